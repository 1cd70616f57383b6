"""Bearer keys: missing, malformed, unknown, revoked, a former member; last use; roles."""

import pytest
from django.utils import timezone

from services.models import ApiKey, Membership
from tests.helpers import assert_error

URL = "/v1/services"


def test_no_header_is_401(client, db):
    assert_error(client.get(URL), 401, id="unauthorized")


@pytest.mark.parametrize(
    "header",
    ["Basic abc", "Bearer", "Bearer ", "oneoff_abc", "Bearer oneoff_wrong", "Bearer " + "x" * 500],
)
def test_bad_headers_are_401(client, db, header):
    assert_error(client.get(URL, headers={"Authorization": header}), 401)


def test_a_revoked_key_is_401(owner_api):
    assert owner_api.get(URL).status_code == 200
    ApiKey.objects.filter(pk=owner_api.key.pk).update(revoked_at=timezone.now())
    assert_error(owner_api.get(URL), 401)


def test_a_key_of_a_user_who_left_the_workspace_is_401(developer_api, developer):
    Membership.objects.filter(user=developer).delete()
    assert_error(developer_api.get(URL), 401)


def test_a_key_of_a_deactivated_user_is_401(developer_api, developer):
    developer.is_active = False
    developer.save()
    assert_error(developer_api.get(URL), 401)


def test_it_records_last_use(owner_api):
    assert owner_api.key.last_used_at is None
    owner_api.get(URL)
    owner_api.key.refresh_from_db()
    assert owner_api.key.last_used_at is not None


def test_the_key_is_stored_as_a_hash_with_a_prefix(owner_api):
    key = owner_api.key
    assert owner_api.secret not in (key.key_hash, key.prefix)
    assert owner_api.secret.startswith(key.prefix)
    assert key.key_hash == ApiKey.hash(owner_api.secret)


def test_openapi_needs_no_key(client, db):
    r = client.get("/v1/openapi.json")
    assert r.status_code == 200
    assert "/v1/services/{serviceId}/jobs" in r.json()["paths"]


def test_an_unknown_path_is_a_json_404(owner_api):
    assert_error(owner_api.get("/v1/nothing/here"), 404, id="not_found")


def test_authenticate_reads_the_users_role_with_the_key(owner_api, developer_api, developer):
    assert ApiKey.authenticate(owner_api.secret).member_role == "admin"
    assert ApiKey.authenticate("oneoff_wrong") is None
    Membership.objects.filter(user=developer).delete()
    assert ApiKey.authenticate(developer_api.secret).member_role is None

"""The API extensions of log masking: a service's ``maskSecrets`` (update and create) and an env
var's ``secret`` mark. Admins set them; another workspace's admin gets a 404, a developer a 403."""

import pytest

from services.models import EnvVar, Service
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def env_url(service, key=""):
    return f"/v1/services/{service.id}/env-vars" + (f"/{key}" if key else "")


def test_masking_is_on_by_default_and_an_admin_turns_it_off_and_on(owner_api, service):
    assert owner_api.get(f"/v1/services/{service.id}").json()["maskSecrets"] is True
    r = owner_api.patch(f"/v1/services/{service.id}", {"maskSecrets": False})
    assert r.status_code == 200, r.content
    assert r.json()["maskSecrets"] is False
    service.refresh_from_db()
    assert service.mask_secrets is False
    # Left out, it stays.
    owner_api.patch(f"/v1/services/{service.id}", {"name": "renamed"})
    service.refresh_from_db()
    assert service.mask_secrets is False
    assert owner_api.patch(f"/v1/services/{service.id}", {"maskSecrets": True}).json()[
        "maskSecrets"
    ]


def test_another_workspaces_admin_cannot_change_the_setting(outsider_api, service):
    r = outsider_api.patch(f"/v1/services/{service.id}", {"maskSecrets": False})
    assert_error(r, 404)
    service.refresh_from_db()
    assert service.mask_secrets is True


def test_a_developer_cannot_change_the_setting(developer_api, service):
    assert_error(developer_api.patch(f"/v1/services/{service.id}", {"maskSecrets": False}), 403)
    service.refresh_from_db()
    assert service.mask_secrets is True


def test_a_non_boolean_setting_is_a_400_naming_the_field(owner_api, service):
    r = owner_api.patch(f"/v1/services/{service.id}", {"maskSecrets": "no"})
    assert r.status_code == 400, r.content
    assert "maskSecrets" in r.json()["message"]


def test_a_service_is_created_with_masking_off_and_secret_env_vars(owner_api, workspace):
    r = owner_api.post(
        "/v1/services",
        {
            "type": "web_service",
            "name": "api",
            "ownerId": workspace.id,
            "image": {"ownerId": workspace.id, "imagePath": "registry.local/acme/api:1"},
            "envVars": [{"key": "PIN", "value": "42", "secret": True}, {"key": "A", "value": "1"}],
            "maskSecrets": False,
        },
    )
    assert r.status_code == 201, r.content
    assert r.json()["service"]["maskSecrets"] is False
    service = Service.objects.get(pk=r.json()["service"]["id"])
    assert service.secret_keys() == ["PIN"]


def test_an_env_var_is_marked_secret_and_keeps_its_mark(owner_api, viewer_api, service):
    r = owner_api.put(env_url(service, "PIN"), {"value": "4242", "secret": True})
    assert r.status_code == 200, r.content
    assert r.json() == {"key": "PIN", "value": "4242", "secret": True}
    # A new value without ``secret`` keeps the mark; ``false`` takes it off.
    assert owner_api.put(env_url(service, "PIN"), {"value": "4343"}).json()["secret"] is True
    # Anyone who sees the key sees the mark (never the value).
    assert viewer_api.get(env_url(service, "PIN")).status_code == 403
    listed = viewer_api.get(env_url(service), {"keysOnly": "true"}).json()
    assert [item["envVar"] for item in listed] == [{"key": "PIN", "secret": True}]
    r = owner_api.put(env_url(service, "PIN"), {"value": "4343", "secret": False})
    assert r.json() == {"key": "PIN", "value": "4343"}
    assert EnvVar.objects.get(service=service, key="PIN").secret is False


def test_replacing_all_env_vars_sets_each_mark(owner_api, service):
    r = owner_api.put(
        env_url(service), [{"key": "A", "value": "1", "secret": True}, {"key": "B", "value": "2"}]
    )
    assert r.status_code == 200, r.content
    assert [item["envVar"] for item in r.json()] == [
        {"key": "A", "value": "1", "secret": True},
        {"key": "B", "value": "2"},
    ]


def test_another_workspaces_admin_cannot_mark_an_env_var(outsider_api, service):
    EnvVar.objects.create(service=service, key="PIN", value="4242")
    assert_error(outsider_api.put(env_url(service, "PIN"), {"value": "1", "secret": True}), 404)
    var = EnvVar.objects.get(service=service, key="PIN")
    assert (var.value, var.secret) == ("4242", False)


def test_a_non_boolean_secret_is_a_400(owner_api, service):
    r = owner_api.put(env_url(service, "PIN"), {"value": "1", "secret": "yes"})
    assert r.status_code == 400, r.content
    assert "secret" in r.json()["message"]

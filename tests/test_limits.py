"""Request limits on both faces: 413 for a body over REQUEST_MAX_BYTES, 400 naming the field for
a NUL character anywhere in a query or body."""

import json

import pytest
from django.test import Client

from services.models import ApiKey


@pytest.fixture
def api(owner, workspace):
    _, secret = ApiKey.issue(owner, workspace)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_an_api_body_over_the_limit_is_a_413_before_it_is_read(api, service, settings):
    settings.REQUEST_MAX_BYTES = 1024
    body = json.dumps({"startCommand": "x" * 2000})
    response = api.post(f"/v1/services/{service.id}/jobs", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["id"] == "payload_too_large"


def test_a_dashboard_post_over_the_limit_is_a_styled_413(owner, service, settings):
    settings.REQUEST_MAX_BYTES = 1024
    client = Client()
    client.force_login(owner)
    response = client.post(f"/services/{service.id}/env/", {"key": "BIG", "value": "x" * 4000})
    assert response.status_code == 413
    assert "Request too large" in response.content.decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"startCommand": "echo \x00 hi"}, "startCommand"),
        ({"startCommand": "echo", "planId": "plan\x00"}, "planId"),
    ],
)
def test_nul_in_an_api_field_is_a_400_naming_it(api, service, body, field):
    response = api.post(
        f"/v1/services/{service.id}/jobs", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{field}:")


def test_nul_in_an_env_var_value_is_refused_by_the_api(api, service):
    response = api.put(
        f"/v1/services/{service.id}/env-vars",
        json.dumps([{"key": "A", "value": "ok"}, {"key": "B", "value": "bad\x00value"}]),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("[1].value:")


def test_nul_in_a_query_parameter_is_a_400_on_both_faces(api, owner, service):
    assert api.get(f"/v1/services/{service.id}/jobs", {"status": "failed\x00"}).status_code == 400
    client = Client()
    client.force_login(owner)
    response = client.get(f"/services/{service.id}/jobs/", {"created_from": "\x00"})
    assert response.status_code == 400
    assert "created_from" in response.content.decode()


def test_nul_in_a_dashboard_form_field_is_a_400_naming_it(owner, service):
    client = Client()
    client.force_login(owner)
    response = client.post(f"/services/{service.id}/env/", {"key": "A", "value": "x\x00y"})
    assert response.status_code == 400
    assert "value" in response.content.decode()

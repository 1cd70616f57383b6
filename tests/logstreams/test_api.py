"""GET/PUT/DELETE /v1/logs/streams/owner/{ownerId} and /v1/logs/streams/resource/{resourceId}."""

import pytest
from django.core.cache import cache

from logstreams.models import ServiceLogStream, WorkspaceLogStream
from services.models import ApiKey
from tests.helpers import ApiClient, assert_error


@pytest.fixture(autouse=True)
def _clear_rate_limits():
    cache.clear()


def api_for(user, workspace, *, read_only=False) -> ApiClient:
    key, secret = ApiKey.issue(user, workspace, read_only=read_only)
    return ApiClient(secret, key)


@pytest.fixture
def owner_api(owner, workspace):
    return api_for(owner, workspace)


def owner_url(workspace):
    return f"/v1/logs/streams/owner/{workspace.id}"


# Owner (workspace default) ---------------------------------------------------------------------


def test_it_sets_reads_and_deletes_the_workspace_stream(owner_api, workspace):
    url = owner_url(workspace)
    assert_error(owner_api.get(url), 404, id="not_found")

    response = owner_api.put(
        url, {"endpoint": "localhost:6514", "token": "s3cret", "preview": "send"}
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "ownerId": workspace.id,
        "endpoint": "localhost:6514",
        "preview": "send",
        "enabled": True,
        "hasToken": True,
        "droppedLines": 0,
    }
    stream = WorkspaceLogStream.objects.get(workspace=workspace)
    assert stream.token == "s3cret"
    assert "s3cret" not in owner_api.get(url).content.decode()
    assert owner_api.get(url).json()["endpoint"] == "localhost:6514"

    # The token is kept when omitted, removed with "".
    owner_api.put(url, {"preview": "drop", "enabled": False})
    stream.refresh_from_db()
    assert (stream.token, stream.preview, stream.enabled) == ("s3cret", "drop", False)
    owner_api.put(url, {"preview": "drop", "token": ""})
    stream.refresh_from_db()
    assert stream.token == ""

    response = owner_api.delete(url)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(owner_api.get(url), 404)
    assert_error(owner_api.delete(url), 404)


def test_a_new_endpoint_without_a_token_removes_the_old_token(owner_api, workspace):
    """Re-pointing the stream must not hand the old destination's token to a new host."""
    url = owner_url(workspace)
    body = {"endpoint": "localhost:6514", "token": "s3cret", "preview": "send"}
    assert owner_api.put(url, body).status_code == 200
    # The same endpoint again keeps it.
    owner_api.put(url, {"endpoint": "localhost:6514", "preview": "send"})
    assert WorkspaceLogStream.objects.get(workspace=workspace).token == "s3cret"

    response = owner_api.put(url, {"endpoint": "127.0.0.2:6514", "preview": "send"})
    assert response.status_code == 200, response.content
    assert response.json()["hasToken"] is False
    assert WorkspaceLogStream.objects.get(workspace=workspace).token == ""

    # A new token given with the new endpoint is kept.
    owner_api.put(url, {"endpoint": "localhost:6514", "token": "new", "preview": "send"})
    assert WorkspaceLogStream.objects.get(workspace=workspace).token == "new"


def test_it_shows_dropped_lines_and_the_last_error(owner_api, workspace):
    WorkspaceLogStream.objects.create(
        workspace=workspace,
        endpoint="localhost:6514",
        dropped_lines=42,
        last_error="localhost:6514 refused the connection",
    )
    body = owner_api.get(owner_url(workspace)).json()
    assert body["droppedLines"] == 42
    assert body["lastError"] == "localhost:6514 refused the connection"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"endpoint": "localhost:6514"}, "preview"),
        ({"endpoint": "localhost:6514", "preview": "maybe"}, "preview"),
        ({"preview": "send"}, "endpoint"),
        ({"endpoint": "logs.example.com", "preview": "send"}, "endpoint"),
        ({"endpoint": "logs.example.com:99999", "preview": "send"}, "endpoint"),
        ({"endpoint": "bad host:514", "preview": "send"}, "endpoint"),
        ({"endpoint": None, "preview": "send"}, "endpoint"),
        ({"endpoint": "a.b:1", "preview": "send", "token": "x\ny"}, "token"),
        ({"endpoint": "a.b:1", "preview": "send", "enabled": "sometimes"}, "enabled"),
    ],
)
def test_it_rejects_bad_owner_input_naming_the_field(owner_api, workspace, body, field):
    assert_error(owner_api.put(owner_url(workspace), body), 400, field=field, id="bad_request")
    assert not WorkspaceLogStream.objects.exclude(endpoint="").exists()


def test_it_accepts_an_ipv6_endpoint(owner_api, workspace):
    response = owner_api.put(owner_url(workspace), {"endpoint": "[::1]:6514", "preview": "send"})
    assert response.status_code == 200, response.content


def test_another_workspace_is_not_found(owner_api, outsider, other_workspace):
    WorkspaceLogStream.objects.create(workspace=other_workspace, endpoint="their.host:6514")
    url = owner_url(other_workspace)
    assert_error(owner_api.get(url), 404)
    assert_error(owner_api.put(url, {"endpoint": "mine:1", "preview": "send"}), 404)
    assert_error(owner_api.delete(url), 404)
    assert WorkspaceLogStream.objects.get(workspace=other_workspace).endpoint == "their.host:6514"


@pytest.mark.parametrize("persona", ["developer", "viewer", "read_only_owner"])
def test_only_admins_with_a_write_key_change_it(request, workspace, owner, persona):
    WorkspaceLogStream.objects.create(workspace=workspace, endpoint="localhost:6514")
    if persona == "read_only_owner":
        api = api_for(owner, workspace, read_only=True)
    else:
        api = api_for(request.getfixturevalue(persona), workspace)
    url = owner_url(workspace)
    assert api.get(url).status_code == 200
    assert_error(api.put(url, {"endpoint": "evil.example:1", "preview": "send"}), 403)
    assert_error(api.delete(url), 403)
    assert WorkspaceLogStream.objects.get(workspace=workspace).endpoint == "localhost:6514"


def test_it_needs_a_key(client, workspace):
    response = client.get(owner_url(workspace))
    assert_error(response, 401)


# Resource (service override) -------------------------------------------------------------------


def test_it_sets_a_custom_destination_then_drop_then_deletes(owner_api, service):
    url = f"/v1/logs/streams/resource/{service.id}"
    assert_error(owner_api.get(url), 404)

    body = {"setting": "send", "endpoint": "127.0.0.3:6514", "token": "own"}
    response = owner_api.put(url, body)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "resourceId": service.id,
        "setting": "send",
        "endpoint": "127.0.0.3:6514",
        "hasToken": True,
    }
    assert ServiceLogStream.objects.get(service=service).token == "own"

    response = owner_api.put(url, {"setting": "drop"})
    assert response.json() == {"resourceId": service.id, "setting": "drop"}
    override = ServiceLogStream.objects.get(service=service)
    assert (override.endpoint, override.token) == ("", "")

    assert owner_api.delete(url).status_code == 204
    assert not ServiceLogStream.objects.filter(service=service).exists()
    assert_error(owner_api.delete(url), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "setting"),
        ({"setting": "custom"}, "setting"),
        ({"setting": "send"}, "endpoint"),
        ({"setting": "send", "endpoint": "nope"}, "endpoint"),
        ({"setting": "drop", "endpoint": "localhost:6514"}, "endpoint"),
    ],
)
def test_it_rejects_bad_resource_input_naming_the_field(owner_api, service, body, field):
    url = f"/v1/logs/streams/resource/{service.id}"
    assert_error(owner_api.put(url, body), 400, field=field)
    assert not ServiceLogStream.objects.exists()


def test_a_service_of_another_workspace_is_not_found(owner_api, make_service, other_workspace):
    theirs = make_service(other_workspace, name="theirs")
    ServiceLogStream.objects.create(service=theirs, setting="drop")
    url = f"/v1/logs/streams/resource/{theirs.id}"
    assert_error(owner_api.get(url), 404)
    assert_error(owner_api.put(url, {"setting": "send", "endpoint": "a.b:1"}), 404)
    assert_error(owner_api.delete(url), 404)
    assert_error(owner_api.get("/v1/logs/streams/resource/srv-nope"), 404)
    assert ServiceLogStream.objects.get(service=theirs).setting == "drop"


def test_a_developer_reads_but_cannot_change_an_override(workspace, developer, service):
    ServiceLogStream.objects.create(service=service, setting="drop")
    api = api_for(developer, workspace)
    url = f"/v1/logs/streams/resource/{service.id}"
    assert api.get(url).json() == {"resourceId": service.id, "setting": "drop"}
    assert_error(api.put(url, {"setting": "send", "endpoint": "a.b:1"}), 403)
    assert_error(api.delete(url), 403)


def test_the_openapi_document_describes_the_endpoints(client):
    paths = client.get("/v1/openapi.json").json()["paths"]
    owner = paths["/v1/logs/streams/owner/{ownerId}"]
    resource = paths["/v1/logs/streams/resource/{resourceId}"]
    assert set(owner) == set(resource) == {"get", "put", "delete"}
    assert "204" in owner["delete"]["responses"]
    assert "400" in resource["put"]["responses"]

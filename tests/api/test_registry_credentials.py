"""Registry credentials: Render's paths and shapes, a write-only token stored encrypted, roles,
isolation between workspaces, and the link from an image-backed service."""

import logging

import pytest
from django.db import connection

from services.models import RegistryCredential, Service
from tests.helpers import assert_error

TOKEN = "dckr_pat_s3cret-registry-token"
URL = "/v1/registrycredentials"

# From Render's published OpenAPI document (paths /registrycredentials and
# /registrycredentials/{registryCredentialId}; schemas registryCredential,
# registryCredentialRegistry, registryCredentialSummary).
RENDER = {
    "credential_properties": {"id", "name", "registry", "username", "updatedAt"},
    "credential_required": {"id", "name", "registry", "username", "updatedAt"},
    "summary_properties": {"id", "name"},
    "registries": ["GITHUB", "GITLAB", "DOCKER", "GOOGLE_ARTIFACT", "AWS_ECR"],
    "list_parameters": {
        "name",
        "username",
        "type",
        "createdBefore",
        "createdAfter",
        "updatedBefore",
        "updatedAfter",
        "ownerId",
        "cursor",
        "limit",
    },
    "create_required": {"name", "registry", "username", "authToken", "ownerId"},
    "update_required": {"name", "registry", "username", "authToken"},
    "operations": {
        ("get", "/registrycredentials"): ("list-registry-credentials", "200"),
        ("post", "/registrycredentials"): ("create-registry-credential", "200"),
        ("get", "/registrycredentials/{registryCredentialId}"): (
            "retrieve-registry-credential",
            "200",
        ),
        ("patch", "/registrycredentials/{registryCredentialId}"): (
            "update-registry-credential",
            "200",
        ),
        ("delete", "/registrycredentials/{registryCredentialId}"): (
            "delete-registry-credential",
            "204",
        ),
    },
}


def _body(workspace, **fields) -> dict:
    return {
        "name": "hub",
        "registry": "DOCKER",
        "username": "acme-bot",
        "authToken": TOKEN,
        "ownerId": workspace.id,
        **fields,
    }


@pytest.fixture
def credential(workspace):
    return RegistryCredential.objects.create(
        workspace=workspace, name="hub", registry="DOCKER", username="acme-bot", auth_token=TOKEN
    )


@pytest.fixture
def foreign_credential(other_workspace):
    return RegistryCredential.objects.create(
        workspace=other_workspace,
        name="globex-hub",
        registry="GITHUB",
        username="globex",
        auth_token="globex-token",
    )


# Render's document -----------------------------------------------------------------------------


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def test_the_openapi_document_has_renders_operations_and_shapes(client, db):
    document = client.get("/v1/openapi.json").json()

    for (method, path), (operation_id, success) in RENDER["operations"].items():
        operation = document["paths"][f"/v1{path}"][method]
        assert operation["operationId"] == operation_id
        assert success in operation["responses"], (method, path)
        if success == "200":
            schema = _resolve(
                document, operation["responses"]["200"]["content"]["application/json"]["schema"]
            )
            item = _resolve(document, schema.get("items", schema))
            assert set(item["properties"]) == RENDER["credential_properties"], (method, path)
            assert set(item["required"]) == RENDER["credential_required"], (method, path)
            assert item["properties"]["registry"]["enum"] == RENDER["registries"]

    listing = document["paths"]["/v1/registrycredentials"]["get"]
    assert {p["name"] for p in listing["parameters"]} == RENDER["list_parameters"]
    for method, required in (("post", "create_required"), ("patch", "update_required")):
        path = "/v1/registrycredentials" + ("" if method == "post" else "/{registryCredentialId}")
        body = document["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert set(_resolve(document, body["schema"])["required"]) == RENDER[required]

    service = _resolve(document, {"$ref": "#/components/schemas/ServiceOut"})
    summary = _resolve(document, service["properties"]["registryCredential"]["anyOf"][0])
    assert set(summary["properties"]) == RENDER["summary_properties"]


# The token ------------------------------------------------------------------------------------


def test_crud_in_renders_shapes_and_the_token_is_never_returned(
    owner_api, viewer_api, workspace, caplog
):
    caplog.set_level(logging.DEBUG)
    created = owner_api.post(URL, _body(workspace))
    assert created.status_code == 200, created.content
    credential = created.json()
    assert set(credential) == RENDER["credential_properties"]
    assert credential["id"].startswith("rgc-")
    assert (credential["name"], credential["registry"], credential["username"]) == (
        "hub",
        "DOCKER",
        "acme-bot",
    )
    item_url = f"{URL}/{credential['id']}"

    updated = owner_api.patch(
        item_url,
        {"name": "ghcr", "registry": "GITHUB", "username": "acme", "authToken": TOKEN + "-2"},
    )
    assert updated.status_code == 200, updated.content
    assert updated.json()["name"] == "ghcr"
    assert updated.json()["updatedAt"] >= credential["updatedAt"]

    responses = [created, updated]
    for api in (owner_api, viewer_api):
        responses += [api.get(URL), api.get(item_url)]
    for response in responses:
        assert response.status_code == 200, response.content
        assert TOKEN not in response.content.decode()
    assert viewer_api.get(URL).json() == [viewer_api.get(item_url).json()]
    assert set(viewer_api.get(item_url).json()) == RENDER["credential_properties"]
    assert TOKEN not in caplog.text

    deleted = owner_api.delete(item_url)
    assert deleted.status_code == 204
    assert_error(owner_api.get(item_url), 404, id="not_found")
    assert owner_api.get(URL).json() == []


def test_the_token_is_stored_encrypted(owner_api, workspace):
    created = owner_api.post(URL, _body(workspace)).json()

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT auth_token FROM services_registrycredential WHERE id = %s", [created["id"]]
        )
        (stored,) = cursor.fetchone()

    assert TOKEN not in stored
    credential = RegistryCredential.objects.get(pk=created["id"])
    assert credential.auth_token == TOKEN
    assert credential.auth_config() == {"username": "acme-bot", "password": TOKEN}
    assert TOKEN not in f"{credential!s} {credential!r}"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"registry": "QUAY"}, "registry"),
        ({"username": "bad\nname"}, "username"),
        ({"name": ""}, "name"),
        ({"authToken": "x" * 16385}, "authToken"),
        ({"ownerId": "tea-00000000000000000000"}, "ownerId"),
    ],
)
def test_errors_name_the_field_and_never_echo_the_token(owner_api, workspace, fields, field):
    body = _body(workspace, **fields)

    response = owner_api.post(URL, body)

    assert_error(response, 400, field=field)
    assert TOKEN not in response.content.decode()
    assert "x" * 100 not in response.content.decode()
    assert not RegistryCredential.objects.exists()


def test_a_name_is_unique_in_a_workspace(owner_api, outsider_api, workspace, other_workspace):
    assert owner_api.post(URL, _body(workspace)).status_code == 200
    other = owner_api.post(URL, _body(workspace, name="other")).json()

    assert_error(owner_api.post(URL, _body(workspace)), 409, id="conflict")
    body = _body(workspace)
    del body["ownerId"]
    assert_error(owner_api.patch(f"{URL}/{other['id']}", body), 409, id="conflict")
    assert outsider_api.post(URL, _body(other_workspace)).status_code == 200


def test_update_needs_every_field_as_renders_does(owner_api, credential):
    response = owner_api.patch(f"{URL}/{credential.id}", {"name": "renamed"})

    assert_error(response, 400, field="registry")


# Roles and isolation -------------------------------------------------------------------------


def test_only_admins_change_credentials(
    developer_api, viewer_api, readonly_api, workspace, credential
):
    item_url = f"{URL}/{credential.id}"
    body = _body(workspace, name="new")
    update = {k: v for k, v in body.items() if k != "ownerId"}
    for api in (viewer_api, developer_api, readonly_api):
        assert api.get(URL).status_code == 200
        assert api.get(item_url).status_code == 200
        assert_error(api.post(URL, body), 403, id="forbidden")
        assert_error(api.patch(item_url, update), 403, id="forbidden")
        assert_error(api.delete(item_url), 403, id="forbidden")

    assert list(RegistryCredential.objects.values_list("name", flat=True)) == ["hub"]


def test_another_workspaces_credential_is_not_found_by_any_path(
    owner_api, workspace, credential, foreign_credential
):
    item_url = f"{URL}/{foreign_credential.id}"
    update = {"name": "x", "registry": "DOCKER", "username": "x", "authToken": "x"}

    for response in (
        owner_api.get(item_url),
        owner_api.patch(item_url, update),
        owner_api.delete(item_url),
    ):
        assert_error(response, 404, id="not_found")
        assert "globex" not in response.content.decode()
    listed = owner_api.get(URL).json()
    assert [c["id"] for c in listed] == [credential.id]
    assert owner_api.get(URL, {"ownerId": foreign_credential.workspace_id}).json() == []
    assert_error(owner_api.get(URL, {"cursor": foreign_credential.id}), 400, field="cursor")
    foreign_credential.refresh_from_db()
    assert (foreign_credential.name, foreign_credential.auth_token) == (
        "globex-hub",
        "globex-token",
    )
    assert_error(
        owner_api.post(URL, _body(workspace, ownerId=foreign_credential.workspace_id)),
        400,
        field="ownerId",
    )


# The list --------------------------------------------------------------------------------------


def test_the_list_filters_and_pages_like_renders(owner_api, workspace):
    for name, registry, username in (
        ("one", "DOCKER", "alice"),
        ("two", "GITHUB", "bob"),
        ("three", "GITLAB", "alice"),
    ):
        body = _body(workspace, name=name, registry=registry, username=username)
        assert owner_api.post(URL, body).status_code == 200

    def names(**params):
        response = owner_api.get(URL, params)
        assert response.status_code == 200, response.content
        return [c["name"] for c in response.json()]

    assert names() == ["three", "two", "one"]
    assert names(name="one,two") == ["two", "one"]
    assert names(username="alice") == ["three", "one"]
    assert names(type="GITHUB,GITLAB") == ["three", "two"]
    assert names(ownerId=workspace.id) == ["three", "two", "one"]
    first = RegistryCredential.objects.get(name="one")
    assert names(createdAfter=first.created_at.isoformat()) == ["three", "two", "one"]
    assert names(createdBefore=first.created_at.isoformat()) == []
    assert names(updatedAfter="2999-01-01T00:00:00Z") == []
    assert names(updatedBefore="2999-01-01T00:00:00Z") == ["three", "two", "one"]

    page = owner_api.get(URL, {"limit": 2}).json()
    assert [c["name"] for c in page] == ["three", "two"]
    assert names(limit=2, cursor=page[-1]["id"]) == ["one"]
    assert_error(owner_api.get(URL, {"type": "QUAY"}), 400, field="type")
    assert_error(owner_api.get(URL, {"cursor": "rgc-nope"}), 400, field="cursor")


# Services -------------------------------------------------------------------------------------


def _image_service(workspace, **image) -> dict:
    return {
        "type": "web_service",
        "name": "private-app",
        "ownerId": workspace.id,
        "image": {"imagePath": "registry.example/acme/app:1", "ownerId": workspace.id, **image},
    }


def test_an_image_service_pulls_with_a_credential_of_its_workspace(
    owner_api, viewer_api, workspace, credential
):
    created = owner_api.post(
        "/v1/services", _image_service(workspace, registryCredentialId=credential.id)
    )

    assert created.status_code == 201, created.content
    service = created.json()["service"]
    assert service["registryCredential"] == {"id": credential.id, "name": "hub"}
    assert Service.objects.get(pk=service["id"]).registry_credential == credential
    for response in (
        viewer_api.get(f"/v1/services/{service['id']}"),
        viewer_api.get("/v1/services"),
    ):
        assert response.status_code == 200
        assert TOKEN not in response.content.decode()
    shown = viewer_api.get(f"/v1/services/{service['id']}").json()
    assert shown["registryCredential"] == {"id": credential.id, "name": "hub"}


def test_a_credential_of_another_workspace_is_refused_for_a_service(
    owner_api, workspace, credential, foreign_credential, make_service
):
    created = owner_api.post(
        "/v1/services", _image_service(workspace, registryCredentialId=foreign_credential.id)
    )
    assert_error(created, 400, field="image.registryCredentialId")
    assert "globex" not in created.content.decode()
    assert not Service.objects.filter(name="private-app").exists()

    service = make_service(image_ref="registry.example/acme/app:1", registry_credential=credential)
    patched = owner_api.patch(
        f"/v1/services/{service.id}",
        {"image": {"imagePath": "registry.example/acme/app:2", "registryCredentialId": "rgc-x"}},
    )
    assert_error(patched, 400, field="image.registryCredentialId")
    patched = owner_api.patch(
        f"/v1/services/{service.id}",
        {"image": {"imagePath": "r.example/a:2", "registryCredentialId": foreign_credential.id}},
    )
    assert_error(patched, 400, field="image.registryCredentialId")
    service.refresh_from_db()
    assert (service.image_ref, service.registry_credential) == (
        "registry.example/acme/app:1",
        credential,
    )
    assert_error(
        owner_api.post(
            "/v1/services", _image_service(workspace, ownerId=foreign_credential.workspace_id)
        ),
        400,
        field="image.ownerId",
    )


def test_updating_the_image_keeps_removes_or_replaces_the_credential(
    owner_api, workspace, credential, make_service
):
    service = make_service(image_ref="registry.example/acme/app:1", registry_credential=credential)
    other = RegistryCredential.objects.create(
        workspace=workspace, name="other", registry="GITLAB", username="u", auth_token="t"
    )
    url = f"/v1/services/{service.id}"

    def linked(image):
        response = owner_api.patch(url, {"image": image})
        assert response.status_code == 200, response.content
        service.refresh_from_db()
        assert response.json().get("registryCredential") == (
            {"id": service.registry_credential_id, "name": service.registry_credential.name}
            if service.registry_credential
            else None
        )
        return service.registry_credential

    assert linked({"imagePath": "registry.example/acme/app:2"}) == credential
    assert linked({"imagePath": "registry.example/acme/app:3", "registryCredentialId": other.id})
    assert service.registry_credential == other
    assert (
        linked({"imagePath": "registry.example/acme/app:4", "registryCredentialId": None}) is None
    )

    service.registry_credential = credential
    service.save()
    response = owner_api.patch(url, {"repo": "https://git.example/acme/app.git"})
    assert response.status_code == 200, response.content
    service.refresh_from_db()
    assert service.registry_credential is None


def test_deleting_a_credential_unlinks_it_from_its_services(
    owner_api, workspace, credential, make_service
):
    service = make_service(image_ref="registry.example/acme/app:1", registry_credential=credential)

    assert owner_api.delete(f"{URL}/{credential.id}").status_code == 204

    service.refresh_from_db()
    assert service.registry_credential is None
    assert "registryCredential" not in owner_api.get(f"/v1/services/{service.id}").json()


# The engine ------------------------------------------------------------------------------------


def test_auth_config_logs_the_engine_into_a_real_registry(
    auth_registry, docker_client, busybox_image, workspace
):
    digest = auth_registry.push(busybox_image, "acme/app:1")
    credential = RegistryCredential.objects.create(
        workspace=workspace,
        name="local",
        registry="DOCKER",
        username=auth_registry.username,
        auth_token=auth_registry.password,
    )
    reference = auth_registry.reference(f"acme/app@{digest}")

    pulled = docker_client.images.pull(reference, auth_config=credential.auth_config())

    assert pulled.id == busybox_image
    docker_client.images.remove(reference, noprune=True)

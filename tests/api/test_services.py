"""Owners, services, env vars and builds in Render's shapes."""

import pytest

from services.models import Build, EnvVar, Service
from tests.helpers import assert_error

SERVICE_KEYS = {
    "id", "name", "ownerId", "type", "slug", "suspended", "suspenders", "autoDeploy",
    "notifyOnFail", "rootDir", "dashboardUrl", "createdAt", "updatedAt", "serviceDetails",
}  # fmt: skip


def test_it_lists_owners(viewer_api, workspace):
    body = viewer_api.get("/v1/owners").json()
    assert len(body) == 1
    assert body[0]["owner"] == {
        "id": workspace.id, "name": "Acme", "email": "ops@acme.test", "type": "team"
    }  # fmt: skip
    assert body[0]["cursor"]
    assert viewer_api.get("/v1/owners", {"cursor": body[0]["cursor"]}).json() == []


def test_it_retrieves_its_owner_only(viewer_api, workspace, other_workspace):
    assert viewer_api.get(f"/v1/owners/{workspace.id}").json()["id"] == workspace.id
    assert_error(viewer_api.get(f"/v1/owners/{other_workspace.id}"), 404)


def image_body(workspace, **extra):
    return {
        "type": "web_service",
        "name": "api",
        "ownerId": workspace.id,
        "image": {"ownerId": workspace.id, "imagePath": "registry.local/acme/api:1"},
        "envVars": [{"key": "A", "value": "1"}, {"key": "TOKEN", "generateValue": True}],
        "serviceDetails": {"plan": "standard", "disk": {"name": "d", "mountPath": "/data"}},
        **extra,
    }


def test_it_creates_an_image_service_and_its_first_build(owner_api, workspace):
    r = owner_api.post("/v1/services", image_body(workspace))
    assert r.status_code == 201, r.content
    body = r.json()
    service = body["service"]
    assert set(service) >= SERVICE_KEYS
    assert service["id"].startswith("srv-")
    assert service["suspended"] == "not_suspended"
    assert service["imagePath"] == "registry.local/acme/api:1"
    assert service["serviceDetails"]["plan"] == "standard"
    assert service["serviceDetails"]["planId"] == "plan-srv-008"
    assert service["serviceDetails"]["disk"]["mountPath"] == "/data"
    build = Build.objects.get(pk=body["buildId"])
    assert build.service_id == service["id"]
    values = Service.objects.get(pk=service["id"]).env_dict()
    assert values["A"] == "1"
    assert len(values["TOKEN"]) >= 32


def test_it_creates_a_repo_cron_job_with_a_plan_id(owner_api, workspace):
    body = {
        "type": "cron_job",
        "name": "nightly",
        "ownerId": workspace.id,
        "repo": "https://git.local/acme/app.git",
        "serviceDetails": {
            "plan": "plan-crn-005",
            "envSpecificDetails": {"dockerfilePath": "./ops/Dockerfile", "dockerContext": "ops"},
        },
    }
    r = owner_api.post("/v1/services", body)
    assert r.status_code == 201, r.content
    service = r.json()["service"]
    assert service["id"].startswith("crn-")
    assert service["branch"] == "main"
    assert service["serviceDetails"]["planId"] == "plan-crn-005"
    assert service["serviceDetails"]["envSpecificDetails"]["dockerfilePath"] == "./ops/Dockerfile"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "static_site"}, "type"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"ownerId": "tea-00000000000000000000"}, "ownerId"),
        ({"repo": "https://git.local/x.git"}, "image"),
        ({"image": None}, "repo"),
        ({"serviceDetails": {"plan": "plan-crn-003"}}, "serviceDetails.plan"),
        ({"serviceDetails": {"plan": "huge"}}, "serviceDetails.plan"),
        ({"envVars": [{"key": "1BAD", "value": "x"}]}, "envVars[0].key"),
        ({"envVars": [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]}, "envVars[1].key"),
        ({"envVars": [{"key": "A"}]}, "envVars[0].value"),
        ({"envVars": "A=1"}, "envVars"),
        (
            {"envVars": [{"key": "A", "value": "1"}, {"key": "B", "value": "x\x1b"}]},
            "envVars[1].value",
        ),
    ],
)
def test_bad_create_bodies_are_400s(owner_api, workspace, change, field):
    assert_error(owner_api.post("/v1/services", image_body(workspace, **change)), 400, field=field)
    assert not Service.objects.exists()


def test_a_duplicate_name_is_400(owner_api, workspace, service):
    r = owner_api.post("/v1/services", image_body(workspace, name=service.name))
    assert_error(r, 400, field="name")


def test_only_admins_create_services(developer_api, viewer_api, readonly_api, workspace):
    for api in (developer_api, viewer_api, readonly_api):
        assert_error(api.post("/v1/services", image_body(workspace)), 403)


def test_it_lists_services_with_filters_and_cursor(viewer_api, make_service):
    web = make_service(name="web")
    cron = make_service(name="cron", type="cron_job", suspended=True)
    body = viewer_api.get("/v1/services").json()
    assert [i["service"]["id"] for i in body] == [cron.id, web.id]
    second = viewer_api.get("/v1/services", {"limit": 1, "cursor": body[0]["cursor"]}).json()
    assert [i["service"]["id"] for i in second] == [web.id]
    assert [
        i["service"]["id"] for i in viewer_api.get("/v1/services", {"type": "cron_job"}).json()
    ] == [cron.id]
    got = viewer_api.get("/v1/services", {"suspended": "not_suspended", "name": "web,x"}).json()
    assert [i["service"]["id"] for i in got] == [web.id]
    assert_error(viewer_api.get("/v1/services", {"type": "static_site"}), 400, field="type")


def test_it_retrieves_updates_suspends_and_resumes(owner_api, viewer_api, service):
    url = f"/v1/services/{service.id}"
    assert viewer_api.get(url).json()["name"] == "web"
    r = owner_api.patch(
        url, {"name": "web2", "serviceDetails": {"plan": "pro"}, "autoDeploy": "yes"}
    )
    assert r.status_code == 200, r.content
    assert r.json()["serviceDetails"]["planId"] == "plan-srv-010"
    assert r.json()["autoDeploy"] == "yes"
    assert owner_api.post(f"{url}/suspend").status_code == 202
    assert viewer_api.get(url).json()["suspended"] == "suspended"
    assert owner_api.post(f"{url}/resume").status_code == 202
    assert viewer_api.get(url).json()["suspended"] == "not_suspended"
    assert_error(
        owner_api.patch(url, {"serviceDetails": {"plan": "nope"}}), 400, field="serviceDetails.plan"
    )
    assert_error(owner_api.patch(url, {"name": 5}), 400, field="name")


# Env vars -----------------------------------------------------------------------------------


def test_admin_reads_env_values_others_get_a_403_or_the_names(
    owner_api, developer_api, viewer_api, built_service
):
    url = f"/v1/services/{built_service.id}/env-vars"
    assert owner_api.get(url).json() == [
        {
            "envVar": {"key": "DATABASE_URL", "value": "postgres://secret"},
            "cursor": owner_api.get(url).json()[0]["cursor"],
        },
        {
            "envVar": {"key": "DEBUG", "value": "0"},
            "cursor": owner_api.get(url).json()[1]["cursor"],
        },
    ]
    for api in (developer_api, viewer_api):
        for r in (api.get(url), api.get(f"{url}/DATABASE_URL"), api.get(f"{url}/NOPE")):
            assert_error(r, 403)
            assert "keysOnly=true" in r.json()["message"]
            assert b"secret" not in r.content
        r = api.get(url, {"keysOnly": "true"})
        assert [i["envVar"] for i in r.json()] == [{"key": "DATABASE_URL"}, {"key": "DEBUG"}]
        assert b"secret" not in r.content
    assert [i["envVar"] for i in owner_api.get(url, {"keysOnly": "true"}).json()] == [
        {"key": "DATABASE_URL"},
        {"key": "DEBUG"},
    ]
    assert owner_api.get(f"{url}/DATABASE_URL").json()["value"] == "postgres://secret"


def test_env_vars_take_render_generate_value(owner_api, built_service):
    url = f"/v1/services/{built_service.id}/env-vars"
    r = owner_api.put(f"{url}/TOKEN", {"generateValue": True})
    assert r.status_code == 200, r.content
    generated = r.json()["value"]
    assert len(generated) >= 32
    assert built_service.env_dict()["TOKEN"] == generated
    assert owner_api.put(f"{url}/TOKEN", {"generateValue": True}).json()["value"] != generated
    assert_error(owner_api.put(f"{url}/TOKEN", {}), 400, field="value")
    assert_error(owner_api.put(f"{url}/TOKEN", {"generateValue": False}), 400, field="value")
    both = {"value": "x", "generateValue": True}
    assert_error(owner_api.put(f"{url}/TOKEN", both), 400, field="generateValue")
    assert_error(owner_api.put(url, [{"key": "A", **both}]), 400, field="body[0].generateValue")
    r = owner_api.put(url, [{"key": "A", "generateValue": True}, {"key": "B", "value": "b"}])
    assert r.status_code == 200, r.content
    values = {i["envVar"]["key"]: i["envVar"]["value"] for i in r.json()}
    assert len(values["A"]) >= 32
    assert values["B"] == "b"


def test_env_vars_page_by_cursor(owner_api, built_service):
    url = f"/v1/services/{built_service.id}/env-vars"
    first = owner_api.get(url, {"limit": 1}).json()
    second = owner_api.get(url, {"limit": 1, "cursor": first[0]["cursor"]}).json()
    assert [i["envVar"]["key"] for i in first + second] == ["DATABASE_URL", "DEBUG"]
    assert_error(owner_api.get(url, {"cursor": "%%%"}), 400, field="cursor")


def test_it_replaces_puts_and_deletes_env_vars(owner_api, built_service):
    url = f"/v1/services/{built_service.id}/env-vars"
    r = owner_api.put(url, [{"key": "NEW", "value": "n"}, {"key": "DEBUG", "value": "1"}])
    assert r.status_code == 200, r.content
    assert built_service.env_dict() == {"NEW": "n", "DEBUG": "1"}
    r = owner_api.put(f"{url}/EXTRA", {"value": "e"})
    assert r.json() == {"key": "EXTRA", "value": "e"}
    assert owner_api.delete(f"{url}/EXTRA").status_code == 204
    assert_error(owner_api.delete(f"{url}/EXTRA"), 404)
    assert_error(owner_api.get(f"{url}/EXTRA"), 404)
    assert_error(owner_api.put(f"{url}/1BAD", {"value": "x"}), 400, field="envVarKey")
    assert_error(owner_api.put(f"{url}/OK", {"value": "x" * 65537}), 400, field="value")
    assert_error(
        owner_api.put(url, [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]),
        400,
        field="body[1].key",
    )
    assert_error(owner_api.put(url, {"key": "A"}), 400)


def test_env_var_writes_are_admin_only(developer_api, viewer_api, readonly_api, built_service):
    url = f"/v1/services/{built_service.id}/env-vars"
    for api in (developer_api, viewer_api, readonly_api):
        assert_error(api.put(url, []), 403)
        assert_error(api.put(f"{url}/X", {"value": "1"}), 403)
        assert_error(api.delete(f"{url}/DEBUG"), 403)
    assert EnvVar.objects.filter(service=built_service).count() == 2


# Builds -------------------------------------------------------------------------------------


def test_it_builds_from_the_configured_source(developer_api, make_service):
    service = make_service(image_ref="registry.local/acme/api:1")
    r = developer_api.post(f"/v1/services/{service.id}/builds")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["id"].startswith("bld-")
    assert body["status"] == "queued"
    assert body["imageUrl"] == "registry.local/acme/api:1"
    assert developer_api.get(f"/v1/services/{service.id}/builds/{body['id']}").json() == body


def test_it_builds_a_given_image_or_commit(owner_api, make_service):
    image = make_service(name="img", image_ref="registry.local/a:1")
    repo = make_service(name="repo", repo_url="https://git.local/a.git", branch="main")
    r = owner_api.post(f"/v1/services/{image.id}/builds", {"imageUrl": "registry.local/a:2"})
    assert r.json()["imageUrl"] == "registry.local/a:2"
    r = owner_api.post(
        f"/v1/services/{repo.id}/builds", {"commitId": "abc1234", "clearCache": "clear"}
    )
    assert r.json()["commitId"] == "abc1234"
    assert_error(
        owner_api.post(f"/v1/services/{image.id}/builds", {"commitId": "abc1234"}),
        400,
        field="commitId",
    )
    assert_error(
        owner_api.post(f"/v1/services/{repo.id}/builds", {"imageUrl": "x:1"}), 400, field="imageUrl"
    )
    assert_error(
        owner_api.post(f"/v1/services/{repo.id}/builds", {"commitId": "not hex"}),
        400,
        field="commitId",
    )


def test_it_lists_builds(viewer_api, service, make_build):
    a = make_build(service)
    b = make_build(service)
    body = viewer_api.get(f"/v1/services/{service.id}/builds").json()
    assert [i["build"]["id"] for i in body] == [b.id, a.id]
    assert body[0]["build"]["imageId"].startswith("sha256:")
    assert_error(viewer_api.get(f"/v1/services/{service.id}/builds/bld-00000000000000000000"), 404)


def test_viewer_and_read_only_cannot_build(viewer_api, readonly_api, service):
    for api in (viewer_api, readonly_api):
        assert_error(api.post(f"/v1/services/{service.id}/builds"), 403)


def test_it_cancels_a_queued_build_and_refuses_a_finished_one(developer_api, service, make_build):
    queued = make_build(service, status="queued")
    done = make_build(service)
    r = developer_api.post(f"/v1/services/{service.id}/builds/{queued.id}/cancel")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "canceled"
    assert (
        developer_api.post(f"/v1/services/{service.id}/builds/{queued.id}/cancel").json()["status"]
        == "canceled"
    )
    assert_error(developer_api.post(f"/v1/services/{service.id}/builds/{done.id}/cancel"), 400)


@pytest.mark.parametrize("value", ["x\x1b[31m", "bell\x07", "del\x7f"])
def test_env_values_with_control_characters_are_400s_naming_the_key(
    owner_api, built_service, value
):
    # The request middleware refuses only NUL; the domain refuses the other controls too.
    url = f"/v1/services/{built_service.id}/env-vars"
    before = built_service.env_dict()
    r = owner_api.put(url, [{"key": "OK", "value": "fine"}, {"key": "BAD_ONE", "value": value}])
    assert_error(r, 400, field="body[1].value")
    assert "BAD_ONE" in r.json()["message"]
    r = owner_api.put(f"{url}/BAD_ONE", {"value": value})
    assert_error(r, 400, field="value")
    assert "BAD_ONE" in r.json()["message"]
    assert built_service.env_dict() == before
    assert owner_api.put(f"{url}/GOOD", {"value": "tab\tand\nnewline"}).status_code == 200

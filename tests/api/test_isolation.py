"""Every endpoint, with a key of another workspace (404, nothing changes) and with a viewer or a
read-only key on writes (403, nothing changes)."""

import pytest

from jobs.models import Job
from services.models import Build, EnvVar, Service
from tests.helpers import assert_error


@pytest.fixture
def target(owner_api, built_service):
    """A service with a build, env vars and a job, all in the owner's workspace."""
    r = owner_api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "echo"})
    job = r.json()["id"]
    return {
        "srv": built_service.id,
        "job": job,
        "bld": built_service.builds.get().id,
        "tea": built_service.workspace_id,
    }


# (method, path, body) for every endpoint that names a resource.
ENDPOINTS = [
    ("GET", "/v1/owners/{tea}", None),
    ("GET", "/v1/services/{srv}", None),
    ("PATCH", "/v1/services/{srv}", {"name": "taken"}),
    ("POST", "/v1/services/{srv}/suspend", None),
    ("POST", "/v1/services/{srv}/resume", None),
    ("GET", "/v1/services/{srv}/env-vars", None),
    ("PUT", "/v1/services/{srv}/env-vars", [{"key": "X", "value": "1"}]),
    ("GET", "/v1/services/{srv}/env-vars/DEBUG", None),
    ("PUT", "/v1/services/{srv}/env-vars/DEBUG", {"value": "1"}),
    ("DELETE", "/v1/services/{srv}/env-vars/DEBUG", None),
    ("GET", "/v1/services/{srv}/builds", None),
    ("POST", "/v1/services/{srv}/builds", None),
    ("GET", "/v1/services/{srv}/builds/{bld}", None),
    ("POST", "/v1/services/{srv}/builds/{bld}/cancel", None),
    ("GET", "/v1/services/{srv}/jobs", None),
    ("POST", "/v1/services/{srv}/jobs", {"startCommand": "echo"}),
    ("GET", "/v1/services/{srv}/jobs/{job}", None),
    ("POST", "/v1/services/{srv}/jobs/{job}/cancel", None),
    ("GET", "/v1/metrics/memory?resource={job}", None),
    ("GET", "/v1/metrics/cpu?resource={job}", None),
]
WRITES = [e for e in ENDPOINTS if e[0] != "GET"]


def snapshot():
    return (
        list(Service.objects.values_list("id", "name", "suspended", "plan_id", "updated_at")),
        sorted(EnvVar.objects.values_list("key", "value")),
        Build.objects.count(),
        list(Job.objects.values_list("id", "status")),
    )


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_another_workspace_gets_404_like_a_missing_id(outsider_api, target, method, path, body):
    before = snapshot()
    r = outsider_api.request(method, path.format(**target), body)
    foreign = assert_error(r, 404, id="not_found")
    missing_ids = {k: v[:4] + "0" * 20 for k, v in target.items()}
    missing = outsider_api.request(method, path.format(**missing_ids), body)
    assert missing.json() == foreign  # indistinguishable
    assert snapshot() == before


def test_another_workspace_lists_none_of_its_services(outsider_api, target):
    assert outsider_api.get("/v1/services").json() == []
    r = outsider_api.get("/v1/services", {"ownerId": target["tea"]})
    assert r.json() == []


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@pytest.mark.parametrize("persona", ["viewer_api", "readonly_api"])
def test_viewers_and_read_only_keys_get_403_on_writes(request, target, persona, method, path, body):
    api = request.getfixturevalue(persona)
    before = snapshot()
    assert_error(api.request(method, path.format(**target), body), 403, id="forbidden")
    assert snapshot() == before


# Values are for admins: a viewer reads env var names with keysOnly=true (403 otherwise).
ADMIN_READS = {"/v1/services/{srv}/env-vars", "/v1/services/{srv}/env-vars/DEBUG"}


def test_viewers_can_read_everything(viewer_api, target):
    for method, path, _ in ENDPOINTS:
        if method == "GET" and path not in ADMIN_READS:
            assert viewer_api.get(path.format(**target)).status_code == 200, path
    url = "/v1/services/{srv}/env-vars".format(**target)
    assert viewer_api.get(url, {"keysOnly": "true"}).status_code == 200

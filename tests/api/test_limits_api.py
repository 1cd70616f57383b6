"""The API of per-job overrides and limits: ``timeoutSeconds`` and ``envVars`` on job create,
``maxConcurrentJobs`` on PATCH /v1/services/{id}, ``monthlyBudget`` on PATCH /v1/owners/{id}.
Who may set what (admins; another workspace's admin gets a 404, a viewer a 403) and the 400s that
name the field."""

import json

import pytest

from jobs.models import Job
from services.models import Service, Workspace
from tests.helpers import assert_error


def jobs_url(service) -> str:
    return f"/v1/services/{service.id}/jobs"


# Overrides on create ---------------------------------------------------------------------------


def test_it_creates_a_job_with_overrides(developer_api, built_service):
    r = developer_api.post(
        jobs_url(built_service),
        {
            "startCommand": "env",
            "timeoutSeconds": 90,
            "envVars": [{"key": "DEBUG", "value": "1"}, {"key": "NEW", "value": "x=y"}],
        },
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["timeoutSeconds"] == 90
    assert body["envVarOverrides"] == ["DEBUG", "NEW"]
    job = Job.objects.get(pk=body["id"])
    assert job.timeout_seconds == 90
    assert job.runtime_limit == 90
    assert job.env_snapshot.values == {
        "DATABASE_URL": "postgres://secret",
        "DEBUG": "1",
        "NEW": "x=y",
    }
    assert built_service.env_dict() == {"DATABASE_URL": "postgres://secret", "DEBUG": "0"}


def test_a_job_without_overrides_shows_none(owner_api, built_service):
    body = owner_api.post(jobs_url(built_service), {"startCommand": "true"}).json()
    assert "timeoutSeconds" not in body
    assert "envVarOverrides" not in body
    assert Job.objects.get(pk=body["id"]).runtime_limit == 2592000


def test_a_timeout_above_job_max_runtime_is_a_400_naming_it(owner_api, built_service, settings):
    settings.JOB_MAX_RUNTIME = 3600
    r = owner_api.post(jobs_url(built_service), {"startCommand": "true", "timeoutSeconds": 3601})
    body = assert_error(r, 400, field="timeoutSeconds")
    assert "JOB_MAX_RUNTIME (3600 s)" in body["message"]
    r = owner_api.post(jobs_url(built_service), {"startCommand": "true", "timeoutSeconds": 3600})
    assert r.status_code == 201
    assert not Job.objects.filter(timeout_seconds=3601).exists()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"timeoutSeconds": 0}, "timeoutSeconds"),
        ({"timeoutSeconds": -5}, "timeoutSeconds"),
        ({"timeoutSeconds": "soon"}, "timeoutSeconds"),
        ({"timeoutSeconds": 1.5}, "timeoutSeconds"),
        ({"timeoutSeconds": True}, "timeoutSeconds"),
        ({"envVars": {"KEY": "value"}}, "envVars"),
        ({"envVars": [{"key": "1BAD", "value": "v"}]}, "envVars[0].key"),
        ({"envVars": [{"key": "A B", "value": "v"}]}, "envVars[0].key"),
        ({"envVars": [{"key": "K" * 257, "value": "v"}]}, "envVars[0].key"),
        ({"envVars": [{"key": "OK"}]}, "envVars[0].value"),
        ({"envVars": [{"key": "OK", "value": "nul\x00"}]}, "envVars[0].value"),
        ({"envVars": [{"key": "OK", "value": "esc\x1b[2J"}]}, "envVars[0].value"),
        ({"envVars": [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]}, "envVars[1].key"),
        ({"envVars": [{"key": f"K{i}", "value": ""} for i in range(101)]}, "envVars"),
    ],
)
def test_bad_overrides_are_a_400_naming_the_field(owner_api, built_service, extra, field):
    r = owner_api.post(jobs_url(built_service), {"startCommand": "true", **extra})
    assert_error(r, 400, field=field)
    assert not Job.objects.exists()


def test_a_viewer_never_sees_override_values(owner_api, viewer_api, built_service):
    secret = "override-secret-123"
    r = owner_api.post(
        jobs_url(built_service),
        {"startCommand": "true", "envVars": [{"key": "TOKEN", "value": secret}]},
    )
    job_id = r.json()["id"]
    for response in (
        r,
        viewer_api.get(f"{jobs_url(built_service)}/{job_id}"),
        viewer_api.get(jobs_url(built_service)),
        owner_api.get(f"{jobs_url(built_service)}/{job_id}"),
    ):
        assert response.status_code in (200, 201)
        assert secret.encode() not in response.content
        assert b"TOKEN" in response.content


def test_an_idempotency_record_keeps_no_plain_hash_of_a_value(owner_api, built_service):
    from api.idempotency import request_hash
    from jobs.models import IdempotencyKey

    body = {"startCommand": "true", "envVars": [{"key": "PIN", "value": "1234"}]}
    headers = {"Idempotency-Key": "k1"}
    first = owner_api.post(jobs_url(built_service), body, headers=headers)
    again = owner_api.post(jobs_url(built_service), body, headers=headers)
    assert first.json()["id"] == again.json()["id"]
    other = {**body, "envVars": [{"key": "PIN", "value": "9999"}]}
    assert owner_api.post(jobs_url(built_service), other, headers=headers).status_code == 422
    plain = {"startCommand": "true", "planId": None, "timeoutSeconds": None, **body}
    record = IdempotencyKey.objects.get(key="k1")
    assert record.request_hash != request_hash(plain)
    assert "1234" not in json.dumps(record.response)


def test_a_budget_refuses_a_create_with_a_402_naming_it(owner_api, built_service, workspace):
    Workspace.objects.filter(pk=workspace.pk).update(monthly_budget=0)
    r = owner_api.post(jobs_url(built_service), {"startCommand": "true"})
    body = assert_error(r, 402, id="budget_exceeded")
    assert body["message"].startswith("the workspace's monthly budget of $0.00 would be exceeded")
    assert not Job.objects.exists()


def test_the_openapi_document_describes_the_extensions(owner_api):
    doc = owner_api.get("/v1/openapi.json").json()
    create = doc["paths"]["/v1/services/{serviceId}/jobs"]["post"]
    assert "402" in create["responses"]
    assert "patch" in doc["paths"]["/v1/owners/{ownerId}"]
    schemas = json.dumps(doc["components"]["schemas"])
    for name in ("timeoutSeconds", "envVarOverrides", "pendingReason", "maxConcurrentJobs"):
        assert name in schemas
    assert "monthlyBudget" in schemas


# maxConcurrentJobs on a service ---------------------------------------------------------------


def test_an_admin_sets_and_removes_a_services_limit(owner_api, service):
    r = owner_api.patch(f"/v1/services/{service.id}", {"maxConcurrentJobs": 3})
    assert r.status_code == 200, r.content
    assert r.json()["maxConcurrentJobs"] == 3
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs == 3
    assert owner_api.get(f"/v1/services/{service.id}").json()["maxConcurrentJobs"] == 3
    r = owner_api.patch(f"/v1/services/{service.id}", {"name": "renamed"})
    assert r.json()["maxConcurrentJobs"] == 3  # left out: unchanged
    r = owner_api.patch(f"/v1/services/{service.id}", {"maxConcurrentJobs": None})
    assert "maxConcurrentJobs" not in r.json()
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs is None


@pytest.mark.parametrize("value", [0, -1, 1001, "two", 1.5, True])
def test_a_bad_limit_is_a_400_naming_it(owner_api, service, value):
    r = owner_api.patch(f"/v1/services/{service.id}", {"maxConcurrentJobs": value})
    assert_error(r, 400, field="maxConcurrentJobs")
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs is None


def test_only_admins_set_a_services_limit(developer_api, viewer_api, readonly_api, service):
    for api in (developer_api, viewer_api, readonly_api):
        r = api.patch(f"/v1/services/{service.id}", {"maxConcurrentJobs": 1})
        assert_error(r, 403)
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs is None


def test_another_workspaces_admin_cannot_set_a_limit(outsider_api, service):
    r = outsider_api.patch(f"/v1/services/{service.id}", {"maxConcurrentJobs": 1})
    assert_error(r, 404)
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs is None


# monthlyBudget on the owner --------------------------------------------------------------------


def test_an_admin_sets_and_removes_the_budget(owner_api, viewer_api, workspace):
    r = owner_api.patch(f"/v1/owners/{workspace.id}", {"monthlyBudget": "25.5"})
    assert r.status_code == 200, r.content
    assert r.json()["monthlyBudget"] == "25.50"
    assert r.json()["monthlySpent"] == "0"
    shown = viewer_api.get(f"/v1/owners/{workspace.id}").json()
    assert shown["monthlyBudget"] == "25.50"
    listed = viewer_api.get("/v1/owners").json()
    assert listed[0]["owner"]["monthlyBudget"] == "25.50"
    r = owner_api.patch(f"/v1/owners/{workspace.id}", {"monthlyBudget": 40})
    assert r.json()["monthlyBudget"] == "40.00"
    r = owner_api.patch(f"/v1/owners/{workspace.id}", {"monthlyBudget": None})
    assert "monthlyBudget" not in r.json()
    assert None not in r.json().values()
    assert Workspace.objects.get(pk=workspace.pk).monthly_budget is None


@pytest.mark.parametrize("body", [{}, {"monthlyBudget": "-1"}, {"monthlyBudget": "1.001"},
                                  {"monthlyBudget": "lots"}, {"monthlyBudget": [1]}])  # fmt: skip
def test_a_bad_budget_is_a_400_naming_it(owner_api, workspace, body):
    r = owner_api.patch(f"/v1/owners/{workspace.id}", body)
    assert_error(r, 400, field="monthlyBudget")
    assert Workspace.objects.get(pk=workspace.pk).monthly_budget is None


def test_only_admins_set_the_budget(developer_api, viewer_api, readonly_api, workspace):
    for api in (developer_api, viewer_api, readonly_api):
        assert_error(api.patch(f"/v1/owners/{workspace.id}", {"monthlyBudget": "1"}), 403)
    assert Workspace.objects.get(pk=workspace.pk).monthly_budget is None


def test_another_workspaces_admin_cannot_set_the_budget(outsider_api, workspace):
    r = outsider_api.patch(f"/v1/owners/{workspace.id}", {"monthlyBudget": "1"})
    assert_error(r, 404)
    assert Workspace.objects.get(pk=workspace.pk).monthly_budget is None


def test_renders_client_parses_the_extended_shapes(owner_api, built_service, workspace):
    """Extensions are extra fields only: Render's generated client (PyPI ``render``) reads them."""
    from render.public_api.models.job import Job as RenderJob
    from render.public_api.models.owner import Owner

    owner_api.patch(f"/v1/services/{built_service.id}", {"maxConcurrentJobs": 2})
    owner_api.patch(f"/v1/owners/{workspace.id}", {"monthlyBudget": "100"})
    body = owner_api.post(
        jobs_url(built_service),
        {"startCommand": "true", "timeoutSeconds": 5, "envVars": [{"key": "A", "value": "b"}]},
    ).json()
    job = RenderJob.from_dict(body)
    assert job.id == body["id"]
    assert job.additional_properties["timeoutSeconds"] == 5
    assert job.additional_properties["envVarOverrides"] == ["A"]
    owner = Owner.from_dict(owner_api.get(f"/v1/owners/{workspace.id}").json())
    assert owner.additional_properties["monthlyBudget"] == "100.00"

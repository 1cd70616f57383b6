"""Per-job overrides against the real parts: the API (POST …/jobs with ``timeoutSeconds`` and
``envVars``), PostgreSQL, Redis, a Celery worker and the Docker Engine running busybox."""

import pytest
from django.test import Client

from jobs.models import Job, JobStatus
from services.models import EnvVar
from tests.helpers import wait_finished

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WORKER_ENV = {"JOB_STOP_GRACE": "1"}


@pytest.fixture
def live_service(job_service, live_worker):
    EnvVar.objects.create(service=job_service, key="DATABASE_URL", value="postgres://service")
    EnvVar.objects.create(service=job_service, key="DEBUG", value="0")
    return job_service


def create(api, service, **body):
    r = api.post(f"/v1/services/{service.id}/jobs", body)
    assert r.status_code == 201, r.content
    return r.json()


def test_a_two_second_timeout_ends_a_sleep_failed_with_timed_out_seconds(owner_api, live_service):
    body = create(
        owner_api, live_service, startCommand="echo begin; sleep 30; echo never", timeoutSeconds=2
    )
    assert body["timeoutSeconds"] == 2
    job = wait_finished(Job.objects.get(pk=body["id"]), timeout=20)
    assert job.status == JobStatus.FAILED
    assert job.reason == {"timedOutSeconds": 2}
    assert 2 <= job.billed_seconds <= 5  # stopped at 2 s (+ a pass and SIGTERM), not 30
    assert list(job.log_lines.values_list("text", flat=True)) == ["begin"]
    shown = owner_api.get(f"/v1/services/{live_service.id}/jobs/{job.id}").json()
    assert shown["status"] == "failed"
    assert shown["reason"] == {"timedOutSeconds": 2}
    assert shown["timeoutSeconds"] == 2


def test_an_env_override_is_in_the_jobs_env_and_snapshot_and_not_in_the_services(
    owner_api, viewer_api, live_service
):
    plain = create(owner_api, live_service, startCommand="env | sort")
    overridden = create(
        owner_api,
        live_service,
        startCommand="env | sort",
        envVars=[
            {"key": "DEBUG", "value": "1"},
            {"key": "EXTRA_TOKEN", "value": "s3cret-override-value"},
        ],
    )
    assert overridden["envVarOverrides"] == ["DEBUG", "EXTRA_TOKEN"]
    assert "s3cret-override-value" not in str(overridden)
    for body in (plain, overridden):
        wait_finished(Job.objects.get(pk=body["id"]))

    job = Job.objects.get(pk=overridden["id"])
    assert job.status == JobStatus.SUCCEEDED
    printed = set(job.log_lines.values_list("text", flat=True))
    # The container's env: the override replaces the service's DEBUG and adds EXTRA_TOKEN. The
    # log masks values of 6+ characters (jobs.logs.mask), the override's too: only that value
    # becomes ****.
    assert {"DEBUG=1", "EXTRA_TOKEN=****", "DATABASE_URL=****"} <= printed
    assert not [line for line in printed if "s3cret-override-value" in line]
    assert "DEBUG=0" not in printed
    # The snapshot has it, and so its digest differs from the plain job's.
    assert job.env_snapshot.values == {
        "DATABASE_URL": "postgres://service",
        "DEBUG": "1",
        "EXTRA_TOKEN": "s3cret-override-value",
    }
    assert overridden["envDigest"] != plain["envDigest"]
    plain_job = Job.objects.get(pk=plain["id"])
    assert "DEBUG=0" in set(plain_job.log_lines.values_list("text", flat=True))
    # The service's env vars are untouched.
    assert live_service.env_dict() == {"DATABASE_URL": "postgres://service", "DEBUG": "0"}
    r = owner_api.get(f"/v1/services/{live_service.id}/env-vars")
    assert [item["envVar"] for item in r.json()] == [
        {"key": "DATABASE_URL", "value": "postgres://service"},
        {"key": "DEBUG", "value": "0"},
    ]

    # A viewer sees the override keys, never the values: neither in the API nor on the page.
    seen = viewer_api.get(f"/v1/services/{live_service.id}/jobs/{job.id}")
    assert seen.json()["envVarOverrides"] == ["DEBUG", "EXTRA_TOKEN"]
    listed = viewer_api.get(f"/v1/services/{live_service.id}/jobs")
    for response in (seen, listed):
        assert b"s3cret-override-value" not in response.content
    page = Client()
    page.force_login(viewer_api.key.user)
    html = page.get(f"/services/{live_service.id}/jobs/{job.id}/").content.decode()
    assert "EXTRA_TOKEN" in html
    assert "s3cret-override-value" not in html.split('id="log-viewer"')[0]  # the summary

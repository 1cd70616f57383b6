"""POST/GET /v1/services/{id}/jobs, GET …/jobs/{id}, POST …/jobs/{id}/cancel."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job, JobStatus
from services.models import BuildStatus, Plan, Service
from tests.helpers import assert_error

JOB_KEYS = {"id", "serviceId", "startCommand", "planId", "createdAt", "status"}


def test_it_creates_a_job(owner_api, built_service):
    r = owner_api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "echo hi"})
    assert r.status_code == 201, r.content
    body = r.json()
    assert set(body) >= JOB_KEYS
    assert body["status"] == "pending"
    assert body["planId"] == "plan-srv-006"
    assert body["serviceId"] == built_service.id
    assert "startedAt" not in body
    assert "finishedAt" not in body
    assert None not in body.values()
    assert body["createdAt"].endswith("+00:00")
    assert "." in body["createdAt"]
    job = Job.objects.get(pk=body["id"])
    assert job.env_snapshot.values == {"DATABASE_URL": "postgres://secret", "DEBUG": "0"}
    assert body["buildId"] == job.build_id
    assert body["imageId"].startswith("sha256:")
    assert body["createdBy"] == "alice@acme.test"
    assert r["Ratelimit-Limit"] == "2000"


def test_developer_creates_a_job_with_a_plan(developer_api, built_service):
    r = developer_api.post(
        f"/v1/services/{built_service.id}/jobs",
        {"startCommand": "echo hi", "planId": "plan-srv-010"},
    )
    assert r.status_code == 201
    assert r.json()["planId"] == "plan-srv-010"


def test_it_snapshots_the_latest_successful_build(owner_api, built_service, make_build):
    latest = make_build(built_service, image_id="sha256:" + "1" * 64)
    make_build(built_service, status=BuildStatus.FAILED)
    r = owner_api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "true"})
    assert r.json()["buildId"] == latest.id


def test_it_enqueues_only_after_commit(
    owner_api, built_service, django_capture_on_commit_callbacks, monkeypatch
):
    sent: list[str] = []
    monkeypatch.setattr("jobs.launch.enqueue_start", sent.append)
    with django_capture_on_commit_callbacks() as callbacks:
        r = owner_api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "true"})
        assert sent == []  # nothing before the commit
    assert r.status_code == 201
    for callback in callbacks:
        callback()
    assert sent == [r.json()["id"]]  # one start message, once committed


def test_it_rejects_a_service_without_a_successful_build(owner_api, service, make_build):
    make_build(service, status=BuildStatus.FAILED)
    r = owner_api.post(f"/v1/services/{service.id}/jobs", {"startCommand": "true"})
    body = assert_error(r, 400)
    assert "no successful build" in body["message"]
    assert not Job.objects.exists()


def test_it_rejects_a_cron_plan_on_a_web_service(owner_api, built_service):
    r = owner_api.post(
        f"/v1/services/{built_service.id}/jobs", {"startCommand": "true", "planId": "plan-crn-003"}
    )
    body = assert_error(r, 400)
    assert "planId" in body["message"]
    assert "plan-srv-006" in body["message"]
    assert "plan-crn" not in body["message"].split("valid plan ids:")[1]


def test_it_rejects_a_web_plan_on_a_cron_job(owner_api, make_service, make_build):
    cron = make_service(type="cron_job")
    make_build(cron)
    r = owner_api.post(
        f"/v1/services/{cron.id}/jobs", {"startCommand": "true", "planId": "plan-srv-006"}
    )
    body = assert_error(r, 400)
    assert "plan-crn-003" in body["message"]


def test_it_rejects_an_unknown_plan(owner_api, built_service):
    r = owner_api.post(
        f"/v1/services/{built_service.id}/jobs", {"startCommand": "true", "planId": "plan-x"}
    )
    assert "plan-x" in assert_error(r, 400)["message"]


def test_it_rejects_a_free_base_plan(owner_api, built_service):
    free = Plan.objects.create(
        id="plan-srv-free", name="Free", kind="srv", memory_mb=512, cpu=0.1, price_monthly=0
    )
    Service.objects.filter(pk=built_service.pk).update(plan=free)
    r = owner_api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "true"})
    assert "free" in assert_error(r, 400)["message"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"startCommand": ', "body"),
        ("[]", "startCommand"),
        ("{}", "startCommand"),
        ('{"startCommand": 5}', "startCommand"),
        ('{"startCommand": ""}', "startCommand"),
        ('{"startCommand": "true", "planId": 3}', "planId"),
        ('{"startCommand": "' + "x" * 65537 + '"}', "startCommand"),
        ('{"startCommand": "true", "planId": "' + "p" * 65 + '"}', "planId"),
    ],
)
def test_it_rejects_bad_bodies(owner_api, built_service, raw, field):
    r = owner_api.post(f"/v1/services/{built_service.id}/jobs", raw=raw)
    assert_error(r, 400, field=field)


def test_it_rejects_a_nul_in_the_command(owner_api, built_service):
    r = owner_api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "a\x00b"})
    assert "startCommand" in assert_error(r, 400)["message"]


def test_create_is_404_for_a_missing_service(owner_api):
    r = owner_api.post("/v1/services/srv-00000000000000000000/jobs", {"startCommand": "true"})
    assert_error(r, 404, id="not_found")


def test_viewer_and_read_only_key_cannot_create(viewer_api, readonly_api, built_service):
    for api in (viewer_api, readonly_api):
        r = api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "true"})
        assert_error(r, 403, id="forbidden")
    assert not Job.objects.exists()


# Retrieve and cancel ---------------------------------------------------------------------------


@pytest.fixture
def job(owner_api, built_service):
    r = owner_api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "sleep 1"})
    return Job.objects.get(pk=r.json()["id"])


def test_it_retrieves_a_job(viewer_api, job):
    r = viewer_api.get(f"/v1/services/{job.service_id}/jobs/{job.id}")
    assert r.status_code == 200
    assert r.json()["id"] == job.id


def test_retrieve_shows_times_and_exit_once_set(viewer_api, job):
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED,
        started_at=now - timedelta(seconds=3),
        finished_at=now,
        exit_code=2,
        reason={"nonZeroExit": 2},
        billed_seconds=3,
        cost="0.000012",
    )
    body = viewer_api.get(f"/v1/services/{job.service_id}/jobs/{job.id}").json()
    assert body["status"] == "failed"
    assert body["exitCode"] == 2
    assert body["reason"] == {"nonZeroExit": 2}
    assert body["cost"] == "0.000012"
    assert body["billedSeconds"] == 3
    assert body["finishedAt"].endswith("+00:00")


def test_retrieve_says_when_logs_expire_and_when_they_expired(viewer_api, job, workspace):
    url = f"/v1/services/{job.service_id}/jobs/{job.id}"
    assert "logsExpireAt" not in viewer_api.get(url).json()  # still running: nothing expires yet
    finished = timezone.now()
    workspace.log_retention_days = 14
    workspace.save()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished_at=finished)
    body = viewer_api.get(url).json()
    assert body["logsExpireAt"] == (finished + timedelta(days=14)).isoformat(
        timespec="microseconds"
    )
    assert "logsExpiredAt" not in body

    purged = finished + timedelta(days=14, minutes=5)
    Job.objects.filter(pk=job.pk).update(logs_purged_at=purged)
    body = viewer_api.get(url).json()
    assert body["logsExpiredAt"] == purged.isoformat(timespec="microseconds")
    assert "logsExpireAt" not in body


def test_retrieve_is_404_for_a_job_of_another_service(owner_api, job, make_service):
    other = make_service(name="other")
    r = owner_api.get(f"/v1/services/{other.id}/jobs/{job.id}")
    assert_error(r, 404)


def test_retrieve_is_404_for_a_missing_job(owner_api, built_service):
    r = owner_api.get(f"/v1/services/{built_service.id}/jobs/job-00000000000000000000")
    assert_error(r, 404)


def test_it_cancels_a_pending_job(developer_api, job):
    r = developer_api.post(f"/v1/services/{job.service_id}/jobs/{job.id}/cancel")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "canceled"
    assert body["canceledBy"] == "dave@acme.test"
    assert "finishedAt" in body
    # Canceling again returns it unchanged.
    again = developer_api.post(f"/v1/services/{job.service_id}/jobs/{job.id}/cancel")
    assert again.status_code == 200
    assert again.json() == body


def test_cancel_of_a_running_job_asks_the_runner(owner_api, job):
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, started_at=timezone.now())
    r = owner_api.post(f"/v1/services/{job.service_id}/jobs/{job.id}/cancel")
    assert r.status_code == 200
    job.refresh_from_db()
    assert job.cancel_requested_at is not None


def test_cancel_of_a_finished_job_is_400(owner_api, job):
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
    r = owner_api.post(f"/v1/services/{job.service_id}/jobs/{job.id}/cancel")
    assert "succeeded" in assert_error(r, 400)["message"]


def test_viewer_and_read_only_key_cannot_cancel(viewer_api, readonly_api, job):
    for api in (viewer_api, readonly_api):
        r = api.post(f"/v1/services/{job.service_id}/jobs/{job.id}/cancel")
        assert_error(r, 403)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_cancel_is_404_for_a_missing_job(owner_api, built_service):
    r = owner_api.post(f"/v1/services/{built_service.id}/jobs/job-00000000000000000000/cancel")
    assert_error(r, 404)


def test_wrong_method_is_405(owner_api, job):
    r = owner_api.delete(f"/v1/services/{job.service_id}/jobs/{job.id}")
    assert_error(r, 405, id="method_not_allowed")
    assert r["Allow"] == "GET"

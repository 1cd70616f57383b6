"""JOB_MAX_RUNTIME: a job running longer is terminated and fails with timedOutSeconds."""

import pytest

from jobs.launch import create_job
from jobs.models import JobStatus
from tests.helpers import wait_finished

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WORKER_ENV = {"JOB_MAX_RUNTIME": "2", "JOB_STOP_GRACE": "1"}


def test_a_job_past_the_maximum_runtime_is_terminated(live_worker, job_service):
    job = create_job(job_service, "echo begin; sleep 60; echo never")
    wait_finished(job, timeout=15)
    assert job.status == JobStatus.FAILED
    assert job.reason == {"timedOutSeconds": 2}
    assert 2 <= job.billed_seconds <= 5
    assert list(job.log_lines.values_list("text", flat=True)) == ["begin"]


def test_a_quick_job_is_not_affected(live_worker, job_service):
    job = create_job(job_service, "echo fast")
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED

"""``oneoff jobs run --wait`` exits 124 for a job that ran past its timeout (here the server's
JOB_MAX_RUNTIME, 2 s: the per-job ``--timeout`` is sent as ``timeoutSeconds``, an API extension
this exit code does not depend on)."""

import pytest

from jobs.models import Job

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WORKER_ENV = {"JOB_MAX_RUNTIME": "2", "JOB_STOP_GRACE": "1"}


def test_a_job_past_its_timeout_exits_124(oneoff, job_service):
    result = oneoff("jobs", "run", job_service.id, "--tail", "--", "echo begin; sleep 60")
    assert result.returncode == 124, result.stderr
    assert result.stdout == b"begin\n"
    assert result.stderr.endswith(b"failed: timed out after 2 s\n")
    job = Job.objects.get(service=job_service)
    assert job.reason == {"timedOutSeconds": 2}

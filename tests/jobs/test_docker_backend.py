"""The docker backend (JOB_BACKEND=docker, the default) through the backend interface, against the
real engine and without a worker: start, observe, stop, remove."""

import pytest
from django.db import transaction

from jobs.backends import get_backend
from jobs.launch import create_job
from jobs.models import JobStatus

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_start_observe_stop_remove(runner_instance, job_service, settings):
    settings.JOB_STOP_GRACE = 1
    backend = get_backend()
    assert backend.name == "docker"
    with transaction.atomic():
        job = create_job(job_service, "sleep 30")
    try:
        assert backend.start(job.id) == "started"
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING
        seen = backend.observe(job)
        assert seen.state == "running"
        assert seen.host == settings.RUNNER_HOST
        assert backend.start(job.id) == "skipped"  # a second delivery
        assert backend.stop(job)
        seen = backend.observe(job)
        assert seen.state == "exited"
        assert seen.exit_code in (137, 143)
        assert not seen.oom_killed
    finally:
        backend.remove(job)
    assert backend.observe(job).state == "absent"
    assert not backend.stop(job)

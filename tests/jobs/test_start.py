"""runner.start against the real engine, without a worker: duplicate deliveries are harmless."""

import threading

import pytest
from django.db import connection, transaction

from jobs import runner
from jobs.launch import create_job
from jobs.models import JobStatus

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_concurrent_starts_in_one_process_create_one_container(
    runner_instance, job_service, docker_client
):
    # No worker: two threads race runner.start for the same job against the real engine.
    # (create_job's own start message goes to the broker; nobody consumes it in this module.)
    with transaction.atomic():
        job = create_job(job_service, "sleep 5")
    outcomes = []

    def go():
        try:
            outcomes.append(runner.start(job.id))
        finally:
            connection.close()

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        job.refresh_from_db()
        assert sorted(outcomes) == ["skipped", "started"], job.reason
        found = docker_client.containers.list(all=True, filters={"label": f"oneoff.job={job.id}"})
        assert len(found) == 1
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING
        assert job.container_id == found[0].id
        assert runner.start(job.id) == runner.StartOutcome.SKIPPED
    finally:
        for c in docker_client.containers.list(all=True, filters={"label": f"oneoff.job={job.id}"}):
            c.remove(force=True)

"""runner.start against the real engine, without a worker: duplicate deliveries are harmless."""

import json
import threading

import pytest
import requests
from django.db import connection, transaction
from docker import APIClient
from docker.errors import APIError, NotFound

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


def test_the_sweep_fails_running_jobs_of_a_silent_host(job_service, settings):
    from datetime import timedelta

    from django.utils import timezone

    from jobs.models import Job, RunnerHost

    settings.JOB_HOST_TIMEOUT = 60
    long_ago = timezone.now() - timedelta(minutes=10)
    RunnerHost.objects.create(name="ghost", last_seen_at=long_ago)
    RunnerHost.objects.create(name="alive", last_seen_at=timezone.now())
    jobs = {}
    for host in ("ghost", "alive"):
        job = create_job(job_service, "sleep 1000")
        Job.objects.filter(pk=job.pk).update(status="running", host=host, started_at=long_ago)
        jobs[host] = job
    assert runner.sweep()["host_lost"] == 1
    ghost = Job.objects.get(pk=jobs["ghost"].pk)
    assert ghost.status == JobStatus.FAILED
    assert ghost.reason["evicted"] is True
    assert "ghost" in ghost.reason["evictionReason"]
    assert ghost.billed_seconds >= 600
    assert Job.objects.get(pk=jobs["alive"].pk).status == JobStatus.RUNNING


def _job_with_env(job_service, values: dict[str, str]):
    # A snapshot as stored before env values were checked (the check now refuses NUL).
    with transaction.atomic():
        job = create_job(job_service, "true")
    job.env_snapshot.data = json.dumps(values)
    job.env_snapshot.save(update_fields=["data"])
    return job


def test_a_real_start_error_is_scrubbed_of_the_snapshots_values(
    runner_instance, job_service, docker_client
):
    # The engine refuses a NUL in an env value at start and echoes "KEY=value" in its error.
    job = _job_with_env(job_service, {"API_TOKEN": "sec\x00retvalue", "PLAIN": "visible-ish"})
    try:
        assert runner.start(job.id) == runner.StartOutcome.FAILED
        job.refresh_from_db()
        error = job.reason["startError"]
        assert "null" in error, error
        assert "API_TOKEN=****" in error, error
        assert "retvalue" not in error
    finally:
        for c in docker_client.containers.list(all=True, filters={"label": f"oneoff.job={job.id}"}):
            c.remove(force=True)


def test_a_create_error_is_scrubbed_of_the_snapshots_values(
    runner_instance, job_service, monkeypatch
):
    job = _job_with_env(job_service, {"API_TOKEN": "hunter2-secret", "SHORT": "abc"})

    def refuse(*args, **kwargs):
        raise APIError("500", explanation="bad env: API_TOKEN=hunter2-secret SHORT=abc")

    # The engine's answer to the create (runner._create calls the low-level API).
    monkeypatch.setattr(APIClient, "create_container", refuse)
    assert runner.start(job.id) == runner.StartOutcome.FAILED
    job.refresh_from_db()
    assert job.reason == {
        "startError": "Docker could not create the container: bad env: API_TOKEN=**** SHORT=abc"
    }


@pytest.mark.parametrize(
    ("error", "outcome", "status"),
    [
        (APIError("500", explanation="inspect <refused>"), "FAILED", JobStatus.FAILED),
        (NotFound("gone"), "SKIPPED", JobStatus.PENDING),
        (requests.ConnectionError("engine away"), "WAITING", JobStatus.PENDING),
    ],
)
def test_an_error_from_the_inspect_after_the_start_is_handled_as_one_from_the_start(
    runner_instance, job_service, docker_client, monkeypatch, error, outcome, status
):
    """``runner._start_failed``: the engine started the container, then its inspect failed.
    Refused: the job fails with the engine's words and its container goes; gone: someone else
    removed it (a cancel), nothing is recorded; no answer: the job keeps its claim and waits."""
    with transaction.atomic():
        job = create_job(job_service, "sleep 30")

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(runner, "on_launched", None)  # this thread finishes the start itself
    monkeypatch.setattr(APIClient, "inspect_container", fail)
    try:
        assert runner.start(job.id) == getattr(runner.StartOutcome, outcome)
        monkeypatch.undo()
        job.refresh_from_db()
        assert job.status == status
        left = docker_client.containers.list(all=True, filters={"label": f"oneoff.job={job.id}"})
        if outcome == "FAILED":
            assert job.reason == {
                "startError": "Docker could not start the container: inspect <refused>"
            }
            assert left == []
        else:
            assert len(left) == 1  # running; the supervisor adopts or removes it
        if outcome == "WAITING":
            assert job.claimed_at is not None  # kept: the container may run
            assert job.note.startswith("Waiting for the Docker Engine")
    finally:
        for c in docker_client.containers.list(all=True, filters={"label": f"oneoff.job={job.id}"}):
            c.remove(force=True)

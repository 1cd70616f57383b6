"""Starts and cancels around faults (issue 14): a worker crash or a database error between the
container's create and the job's row, a broker that does not answer, an engine that does not
answer while the sweep runs, a database error during a start, and the supervisor's console during
a database outage. Real worker, engine, PostgreSQL and Redis; the faults are injected."""

import logging
import re
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from docker.errors import NotFound

from jobs import runner, tasks
from jobs.launch import cancel_job, create_job
from jobs.models import Job, JobStatus
from jobs.supervisor import Supervisor
from tests.helpers import wait_finished, wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# Prints, then waits to be stopped; says so when it is (SIGTERM).
WAITS = "trap 'echo got TERM; exit 0' TERM; echo ran; while true; do sleep 0.1; done"


class Crash(BaseException):
    """The worker dies here (nothing after this point of runner.start runs)."""


def _purge():
    from config.celery import app

    app.control.purge()


def _lines(job):
    return list(job.log_lines.order_by("seq").values_list("text", flat=True))


def _started_but_not_recorded(job_service, monkeypatch, fault: BaseException) -> Job:
    """A job whose container runs while its row still says pending: runner.start (in this
    process: its start message goes nowhere, so no worker starts it) is cut short after the
    engine started the container and before the row moved to running, by ``fault``."""
    from jobs import launch

    real_enqueue = launch.enqueue_start

    def sent_nowhere(job_id):  # its start message: this process starts it instead
        Job.objects.filter(pk=job_id).update(start_enqueued_at=timezone.now())
        return True

    monkeypatch.setattr(launch, "enqueue_start", sent_nowhere)
    job = create_job(job_service, WAITS)
    monkeypatch.setattr(launch, "enqueue_start", real_enqueue)

    def cut_short(job_id):
        raise fault

    monkeypatch.setattr(runner, "on_starting", cut_short)
    with pytest.raises(type(fault)):
        runner.start(job.id)
    monkeypatch.setattr(runner, "on_starting", None)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.claimed_at is not None
    return job


@pytest.mark.parametrize("fault", ["crash", "database"])
def test_a_cancel_in_the_recovery_window_stops_stores_and_bills_the_container_that_ran(
    live_worker, job_service, docker_client, monkeypatch, fault
):
    if fault == "crash":
        live_worker.stop()  # it died; with a database error it lives through it
    error = Crash() if fault == "crash" else OperationalError("server closed the connection")
    job = _started_but_not_recorded(job_service, monkeypatch, error)
    container = docker_client.containers.get(job.container_name)
    assert container.status == "running"
    time.sleep(1.5)  # it runs a while: that time is billed
    job = cancel_job(job)
    # Not canceled yet: its container runs. The runner carries the cancel out.
    assert job.status == JobStatus.PENDING
    assert job.cancel_requested_at is not None
    if fault == "crash":
        live_worker.start()

    seen_running_after_canceled = []

    def canceled():
        job.refresh_from_db()
        if job.status != JobStatus.CANCELED:
            return False
        try:
            if docker_client.api.inspect_container(container.id)["State"]["Running"]:
                seen_running_after_canceled.append(True)
        except NotFound:
            pass  # stopped, recorded and removed
        return True

    wait_for(canceled, 30, message=f"the job to end canceled:\n{live_worker.tail()}")
    assert not seen_running_after_canceled
    assert job.reason == {"canceledBy": "api"}
    assert _lines(job) == ["ran", "got TERM"]  # its output, to the stop, stored
    assert job.started_at is not None
    assert job.billed_seconds >= 2  # the 1.5 s it ran before the cancel, and the stop
    assert job.cost > 0
    assert job.container_id == container.id


def test_a_cancel_of_a_claimed_job_without_a_container_ends_it_unbilled(
    live_worker, job_service, docker_client
):
    live_worker.stop()
    job = create_job(job_service, "echo never")
    _purge()
    # Claimed by a worker that died before it created anything.
    Job.objects.filter(pk=job.pk).update(
        host=runner.settings.RUNNER_HOST, claimed_at=timezone.now()
    )
    job = cancel_job(job)
    assert job.status == JobStatus.PENDING  # a request: cancel_job sent a start message
    live_worker.start()
    wait_finished(job)
    assert job.status == JobStatus.CANCELED
    assert job.billed_seconds == 0
    assert job.started_at is None
    assert not docker_client.api.containers(all=True, filters={"name": job.container_name})


def test_a_create_while_the_broker_is_down_returns_and_the_sweep_starts_the_job(
    live_worker, job_service, caplog
):
    from config.celery import app

    def use_broker(url):
        app.conf.broker_write_url = url  # where messages are sent (None: CELERY_BROKER_URL)
        app._pool = None  # the connection and producer pools are made again from the URL
        app.amqp._producer_pool = None

    good = app.conf.get("broker_write_url")
    use_broker("redis://127.0.0.1:9/0")  # nothing listens there
    try:
        started = time.monotonic()
        job = create_job(job_service, "echo late")  # the enqueue after commit fails: no raise
        took = time.monotonic() - started
    finally:
        use_broker(good)
    assert took < 10
    assert "the sweep will send it" in caplog.text
    assert "Connection refused" in caplog.text or "Error 111" in caplog.text, caplog.text
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.start_enqueued_at is None  # no live message: the sweep may send one at once
    Job.objects.filter(pk=job.pk).update(created_at=job.created_at - timedelta(seconds=10))
    assert runner.sweep()["requeued"] == 1
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    assert _lines(job) == ["late"]


def _deliveries(live_worker, since: int) -> int:
    with open(live_worker.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    return len(re.findall(r"Task jobs\.tasks\.start_job\[[^\]]+\] received", text))


def test_start_messages_stay_one_per_job_while_the_engine_is_away(
    live_worker, job_service, tmp_path
):
    jobs_count, window = 4, 12.0
    # LOG_LEVEL=DEBUG: Celery's line per task received, counted below.
    live_worker.restart(DOCKER_HOST=f"unix://{tmp_path}/nobody-home.sock", LOG_LEVEL="DEBUG")
    since = live_worker.log_path.stat().st_size
    jobs = [create_job(job_service, f"echo {i}") for i in range(jobs_count)]
    # Old enough for the sweep, which runs flat out (beat runs it every 15 s).
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(
        created_at=timezone.now() - timedelta(seconds=30)
    )
    requeued = 0
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        requeued += runner.sweep()["requeued"]
        time.sleep(0.2)
    deliveries = _deliveries(live_worker, since)
    # Each job: its first message and its retries after 1, 2, 4 and 8 s (5 in all by 12 s,
    # measured: 20 for 4 jobs), one of slack; never one more per sweep (before: 60 sweeps
    # re-enqueued every job, each message retrying on its own).
    assert deliveries <= 6 * jobs_count, (deliveries, requeued, live_worker.tail())
    assert deliveries >= jobs_count
    assert requeued == 0
    assert all(Job.objects.get(pk=j.pk).status == JobStatus.PENDING for j in jobs)
    live_worker.restart()  # the engine is back: they start (their retries, or the sweep)
    for job in jobs:
        Job.objects.filter(pk=job.pk).update(start_enqueued_at=None)
    runner.sweep()
    for job in jobs:
        wait_finished(job, timeout=30)
        assert job.status == JobStatus.SUCCEEDED


def _kill_session() -> None:
    """End this thread's database session from another one, as a PostgreSQL restart does."""
    pid = connection.cursor().connection.info.backend_pid
    db = connection.settings_dict
    dsn = (
        f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} "
        f"user={db['USER'] or 'postgres'} dbname={db['NAME']}"
    )
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_database_error_during_a_start_is_retried_with_backoff(
    live_worker, job_service, docker_client, monkeypatch, caplog
):
    live_worker.stop()
    job = create_job(job_service, "echo retried")
    _purge()
    real_claim = runner.claim
    claims = []

    def claim_on_a_dead_session(job_id):
        claims.append(job_id)
        if len(claims) == 1:
            _kill_session()  # the claim's UPDATE meets a real "terminating connection"
        return real_claim(job_id)

    countdowns = []
    real_retry = tasks.start_job.retry

    def retry(*args, **kwargs):
        countdowns.append(kwargs.get("countdown"))
        return real_retry(*args, **kwargs)

    monkeypatch.setattr(runner, "claim", claim_on_a_dead_session)
    monkeypatch.setattr(tasks.start_job, "retry", retry)
    try:
        tasks.start_job.apply(args=[job.id])  # eager: the retry runs at once
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING
        assert len(claims) == 2
        assert countdowns == [1]
        assert "database error during its start" in caplog.text
    finally:
        live_worker.start()  # its supervisor follows the container to the end
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    assert _lines(job) == ["retried"]


def test_start_retries_back_off_and_end_in_the_sweeps_hands(job_service):
    assert [tasks.start_backoff(n) for n in range(7)] == [1, 2, 4, 8, 15, 15, 15]
    assert sum(tasks.start_backoff(n) for n in range(tasks.START_RETRIES)) < 180
    assert max(tasks.start_backoff(n) for n in range(50)) < (
        runner.START_MESSAGE_LIVE.total_seconds()
    )


@pytest.mark.django_db(transaction=False)
def test_the_supervisor_logs_one_line_per_database_outage(monkeypatch, caplog):
    supervisor = Supervisor(interval=0.01)
    passes = {"n": 0}

    def tick():
        passes["n"] += 1
        if 3 <= passes["n"] < 40 or 60 <= passes["n"] < 80:  # two outages
            raise OperationalError("connection to server failed: Connection refused")

    monkeypatch.setattr(supervisor, "tick", tick)
    monkeypatch.setattr(supervisor, "_acquire_lock", lambda: True)
    caplog.set_level(logging.INFO, logger="jobs.supervisor")
    supervisor.start()
    wait_for(lambda: passes["n"] > 90, 20)
    supervisor.stop()
    down = [r for r in caplog.records if "does not answer" in r.getMessage()]
    back = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(down) == 2, caplog.text
    assert len(back) == 2, caplog.text
    assert not any(r.exc_info for r in caplog.records)
    assert "tick failed" not in caplog.text

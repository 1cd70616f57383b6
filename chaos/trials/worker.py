"""Trials on the worker: SIGKILL while jobs run and right after a POST, a start message
delivered twice, and a cancel while the worker recovers from a crash that came mid-start."""

from __future__ import annotations

import time

import psycopg

from chaos.run import Run


class TrialError(RuntimeError):
    """A trial could not set up what it tests."""


def kill_mid_job(run: Run) -> None:
    """Jobs are running and printing; the worker (and its supervisor thread) gets SIGKILL, and
    is back 1 s later. Every job must end succeeded with each line stored once."""
    jobs = run.post_many(run.sizes.jobs)
    run.wait_running(jobs, lines=3)
    run.stack.worker.kill()
    time.sleep(1)
    run.stack.worker.start().wait_ready(120)


def kill_after_post(run: Run) -> None:
    """SIGKILL the moment the last POST is answered: its start message is queued or half
    handled (claimed, container made, not recorded); the worker is back 1 s later."""
    run.post_many(run.sizes.jobs)
    run.stack.worker.kill()
    time.sleep(1)
    run.stack.worker.start().wait_ready(120)


def duplicate_start(run: Run) -> None:
    """Each job's start message is published again at once, and once more while it runs (as a
    broker redelivering it would): one container per job, and nothing else changes."""
    jobs = run.post_many(run.sizes.jobs)
    for job_id in jobs:
        run.target.send_start(job_id)
    run.wait_running(jobs)
    for job_id in jobs:
        run.target.send_start(job_id)


def cancel_in_recovery(run: Run) -> None:
    """The worker dies after the job's container started but before the start was recorded
    (its UPDATE is held behind a row lock, then its connection is gone), and the job is
    canceled in the recovery window: while the worker is down (odd runs) or the moment it is
    back (even runs). The job must end canceled only once its container stopped, with the
    lines it printed stored and the time it ran billed, and the container removed."""
    if not run.stack.database_url.startswith("postgres"):
        raise TrialError("this trial holds a PostgreSQL row lock")
    job_id = run.post(run.lines_for(15))
    if job_id is None:
        raise TrialError("the job's POST was refused")
    with psycopg.connect(run.stack.database_url, autocommit=False) as lock:
        if not run.events.wait_for(job_id, "create", 60):
            raise TrialError(f"{job_id}'s container was not created within 60 s")
        lock.execute("SET lock_timeout = '10s'")
        lock.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", [job_id])
        if not run.events.wait_for(job_id, "start", 30):
            raise TrialError(f"{job_id}'s container did not start within 30 s")
        time.sleep(0.3)  # the runner now waits on the lock to record the start
        run.stack.worker.kill()
        # A dead worker's statement never reaches the database: end the one it left waiting.
        lock.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        )
        lock.rollback()
    status = run.status(job_id)
    if status != "pending":
        run.info.append(f"the kill came after the start was recorded: {job_id} was {status}")
    time.sleep(1)
    if run.number % 2:
        answer = run.cancel(job_id)
        run.stack.worker.start().wait_ready(120)
    else:
        run.stack.worker.start().wait_ready(120)
        answer = run.cancel(job_id)
    if answer.status != 200:
        run.notes.append(f"cancel of {job_id} answered {answer.status}: {answer.body}")

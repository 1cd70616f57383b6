"""Thin Celery tasks; the logic lives in jobs/runner.py and jobs/logs/."""

import logging
from datetime import datetime

from celery import Task, shared_task
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from jobs import runner
from jobs.backends import get_backend
from jobs.models import IdempotencyKey, Job, JobStatus, RunnerHost
from services import events
from services.outage import quiet_while_database_down

logger = logging.getLogger(__name__)


# A start waiting for the Docker Engine or the database is tried again after 1, 2, 4, 8, then
# every 15 seconds, START_RETRIES times (about 2.5 minutes); then its message ends and the sweep
# sends a new one. Each job has one start message at a time (``Job.start_enqueued_at``).
START_RETRIES = 12
START_BACKOFF_MAX = 15


def start_backoff(retries: int) -> int:
    return int(min(START_BACKOFF_MAX, 2 ** min(retries, 4)))


@shared_task(bind=True, ignore_result=True, max_retries=None, acks_late=True)
def start_job(self: Task[[str], str], job_id: str) -> str:
    """Start a pending job's container. Short: the per-host supervisor follows it afterwards."""
    try:
        outcome = get_backend().start(job_id)
    except DatabaseError as exc:
        # Retried here, not left to the sweep: the job starts once the database answers.
        logger.warning("job %s: database error during its start, trying again: %s", job_id, exc)
        connection.close()
        outcome = runner.StartOutcome.WAITING
    if outcome != runner.StartOutcome.WAITING:
        return outcome.value
    # The Docker Engine (or the database) did not answer: the job stays pending.
    if self.request.retries >= START_RETRIES:
        # This message ends; the sweep sends the next (start_enqueued_at cleared).
        _mark_start_message(job_id, None)
        return "gave up"
    _mark_start_message(job_id, timezone.now())
    raise self.retry(countdown=start_backoff(self.request.retries), max_retries=None)


def _mark_start_message(job_id: str, when: datetime | None) -> None:
    try:
        Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(start_enqueued_at=when)
    except DatabaseError:
        connection.close()  # the sweep's bound still holds: at worst one extra message


@shared_task(ignore_result=True)
@quiet_while_database_down
def sweep() -> dict:
    """Re-enqueue pending jobs whose start message may be lost; end jobs stuck on dead hosts."""
    counts = runner.sweep()
    # A quiet console: a sweep that found nothing to do is a DEBUG line.
    logger.log(logging.INFO if any(counts.values()) else logging.DEBUG, "job sweep: %s", counts)
    return counts


@shared_task(ignore_result=True)
@quiet_while_database_down
def heartbeat() -> None:
    """Record that this runner host's worker is alive (scheduled by beat)."""
    RunnerHost.seen(settings.RUNNER_HOST)


@shared_task(ignore_result=True)
@quiet_while_database_down
def purge_expired_logs() -> None:
    """Delete job and build log lines, and service events, older than their workspace's
    retention."""
    from jobs.logs import retention

    retention.purge_expired_logs()
    events.purge_expired()


@shared_task(ignore_result=True)
@quiet_while_database_down
def index_logs() -> int:
    """Chunk big logs' new lines for search (``jobs.logs.index``)."""
    from jobs.logs import index

    return index.index_due()


@shared_task(ignore_result=True)
@quiet_while_database_down
def purge_idempotency_keys() -> int:
    """Forget Idempotency-Key records older than 24 hours."""
    return IdempotencyKey.purge_expired()

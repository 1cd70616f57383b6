"""Thin Celery tasks; the logic lives in jobs/runner.py and jobs/logs/."""

import logging

from celery import Task, shared_task
from django.conf import settings

from jobs import runner
from jobs.models import IdempotencyKey, RunnerHost

logger = logging.getLogger(__name__)


@shared_task(bind=True, ignore_result=True, max_retries=None, acks_late=True)
def start_job(self: Task[[str], str], job_id: str) -> str:
    """Start a pending job's container. Short: the per-host supervisor follows it afterwards."""
    outcome = runner.start(job_id)
    if outcome == runner.StartOutcome.WAITING:
        # The Docker Engine did not answer: the job stays pending with a visible note.
        raise self.retry(countdown=min(15, 2 ** min(self.request.retries, 4)))
    return outcome.value


@shared_task(ignore_result=True)
def sweep() -> dict:
    """Re-enqueue pending jobs whose start message may be lost; end jobs stuck on dead hosts."""
    counts = runner.sweep()
    # A quiet console: a sweep that found nothing to do is a DEBUG line.
    logger.log(logging.INFO if any(counts.values()) else logging.DEBUG, "job sweep: %s", counts)
    return counts


@shared_task(ignore_result=True)
def heartbeat() -> None:
    """Record that this runner host's worker is alive (scheduled by beat)."""
    RunnerHost.seen(settings.RUNNER_HOST)


@shared_task(ignore_result=True)
def purge_expired_logs() -> None:
    """Delete job and build log lines older than their workspace's retention."""
    from jobs.logs import retention

    retention.purge_expired_logs()


@shared_task(ignore_result=True)
def purge_idempotency_keys() -> int:
    """Forget Idempotency-Key records older than 24 hours."""
    return IdempotencyKey.purge_expired()

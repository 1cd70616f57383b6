from celery import shared_task
from django.conf import settings
from django.utils import timezone

from services.models import RunnerHost


@shared_task(ignore_result=True)
def heartbeat() -> None:
    """Record that this runner host's worker is alive (scheduled by beat)."""
    RunnerHost.objects.update_or_create(
        name=settings.RUNNER_HOST, defaults={"last_seen_at": timezone.now()}
    )


@shared_task(ignore_result=True)
def purge_expired_logs() -> None:
    """Delete job and build log lines older than their workspace's retention (see retention)."""
    from services import retention

    retention.purge_expired_logs()

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

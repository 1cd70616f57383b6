from celery import shared_task
from django.conf import settings
from django.utils import timezone

from services import builder
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


@shared_task(ignore_result=True)
def run_build(build_id: str) -> None:
    """Run a queued build (and then the service's next queued ones); see services.builder."""
    builder.run_build(build_id)


@shared_task(ignore_result=True)
def sweep_builds() -> None:
    """Fail builds whose worker died; re-send queued builds whose message may be lost."""
    builder.sweep_builds()


@shared_task(ignore_result=True)
def cleanup_images() -> None:
    """Remove images of old builds, keeping BUILD_KEEP_IMAGES and any an unfinished job uses."""
    builder.cleanup_images()

"""Thin Celery tasks for builds; the logic lives in services/builds/."""

from celery import shared_task

from services.builds import queue
from services.outage import quiet_while_database_down


@shared_task(ignore_result=True)
def run_build(build_id: str) -> None:
    """Run a queued build (and then the service's next queued ones); see services.builds.queue."""
    queue.run_build(build_id)


@shared_task(ignore_result=True)
@quiet_while_database_down
def sweep_builds() -> None:
    """Fail builds whose worker died; re-send queued builds whose message may be lost."""
    queue.sweep_builds()


@shared_task(ignore_result=True)
@quiet_while_database_down
def cleanup_images() -> None:
    """Remove images of old builds, keeping BUILD_KEEP_IMAGES and any an unfinished job uses."""
    queue.cleanup_images()

"""Builds: where a service's artifacts (immutable Docker image ids) come from."""

from celery import current_app
from django.db import transaction

from services.models import Build, Service


def request_build(
    service: Service, *, commit_id: str = "", image_ref: str = "", user=None
) -> Build:
    """Queue a build of the service's configured source (or of a given commit or image) and
    start it once the transaction commits."""
    build = Build.objects.create(
        service=service,
        image_ref=image_ref or (service.image_ref if not commit_id else ""),
        repo_url="" if image_ref else service.repo_url,
        branch="" if image_ref else service.branch,
        commit_id=commit_id,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    transaction.on_commit(
        lambda: current_app.send_task("services.tasks.run_build", args=[build.id])
    )
    return build

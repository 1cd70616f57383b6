"""The build queue: a service's builds run one at a time, oldest first, and a workspace's at most
BUILD_CONCURRENCY_PER_WORKSPACE at once.

- ``request_build`` queues a build and, once the transaction commits, sends the ``run_build``
  task (Celery queue ``builds``); ``run_build`` claims the workspace's oldest queued build the
  limits allow (``claim_next``) and runs it with ``executor.BuildRun``, then the next one, until
  none is left that the limits allow.
- ``cancel_build`` cancels a queued build at once and asks a running one to stop.
- ``sweep_builds`` and ``cleanup_images`` are the periodic work (Celery beat).
"""

import logging
from datetime import datetime, timedelta
from typing import Any

import docker
from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Count, Exists, Model, OuterRef, QuerySet
from django.utils import timezone
from docker import DockerClient
from docker.errors import APIError, NotFound

from services import events
from services.builds.executor import BuildRun
from services.builds.images import explain
from services.errors import Refused
from services.models import (
    BUILD_FINISHED,
    Build,
    BuildLogLine,
    BuildStatus,
    Deploy,
    DeployTrigger,
    Service,
    Workspace,
)
from services.transitions import transition

logger = logging.getLogger(__name__)

HEARTBEAT_STALE = 120  # seconds without a heart-beat before the sweep fails a build
QUEUED_STALE = 60  # seconds a queued build may wait, with nothing building, before a resend


class CancelRefused(Refused):
    """Only unfinished builds can be canceled."""


def _who(user: User | AnonymousUser | None) -> str:
    if user is not None and user.is_authenticated:
        return user.email or user.get_username()
    return "api"


def request_build(
    service: Service,
    *,
    commit_id: str = "",
    image_ref: str = "",
    user: User | AnonymousUser | None = None,
    trigger: str = DeployTrigger.API,
) -> Build:
    """Queue a build of the service's configured source (or of a given commit or image) and
    start it once the transaction commits. Its deploy (Render's: the build, then live once it
    succeeded) is made with it (``request_deploy`` answers that deploy)."""
    return request_deploy(
        service, commit_id=commit_id, image_ref=image_ref, user=user, trigger=trigger
    ).build


def request_deploy(
    service: Service,
    *,
    commit_id: str = "",
    image_ref: str = "",
    user: User | AnonymousUser | None = None,
    trigger: str = DeployTrigger.API,
) -> Deploy:
    """``request_build``, answering the deploy made with the build."""
    who = user if user is not None and user.is_authenticated else None
    build = Build.objects.create(
        service=service,
        image_ref=image_ref or (service.image_ref if not commit_id else ""),
        repo_url="" if image_ref else service.repo_url,
        repo_credential="" if image_ref else service.repo_credential,
        branch="" if image_ref else service.branch,
        commit_id=commit_id,
        created_by=who,
    )
    deploy = Deploy.objects.create(
        service=service, build=build, trigger=trigger, created_by=who, created_at=build.created_at
    )
    with events.on_its_own(f"deploy {deploy.pk}"):
        events.deploy_started(deploy)
    transaction.on_commit(lambda: enqueue_build(build.id))
    return deploy


def enqueue_build(build_id: str) -> None:
    current_app.send_task("services.tasks.run_build", args=[build_id])


def cancel_build(build: Build, *, user: User | AnonymousUser | None = None) -> Build:
    """Cancel a build. Queued: canceled at once, it never starts. Building: the runner stops it
    (kills git or the docker build) within a second and ends it ``canceled``. Canceled:
    unchanged. Succeeded or failed: refused."""
    now = timezone.now()
    reason = f"Canceled by {_who(user)}."
    if transition(
        Build.objects.filter(pk=build.pk, status=BuildStatus.QUEUED),
        status=BuildStatus.CANCELED,
        cancel_requested_at=now,
        finished_at=now,
        reason=reason,
    ):
        BuildLogLine.objects.create(build_id=build.pk, seq=1, timestamp=now, text=f"==> {reason}")
    else:
        Build.objects.filter(
            pk=build.pk, status=BuildStatus.BUILDING, cancel_requested_at__isnull=True
        ).update(cancel_requested_at=now, reason=reason)
    build.refresh_from_db()
    if build.status in (BuildStatus.SUCCEEDED, BuildStatus.FAILED):
        raise CancelRefused(
            f"build {build.id} has already {build.status}; only unfinished builds can be canceled"
        )
    return build


def claim_next(service_id: str) -> Build | None:
    """Claim the next build to run in the service's workspace, or None when the limits allow
    none.

    Two limits: a service's builds run one at a time, in request order; and at most
    BUILD_CONCURRENCY_PER_WORKSPACE builds of a workspace run at once. The build claimed is the
    workspace's oldest queued build whose service is idle. A build held back by the workspace's
    limit is claimed by the runner of the build that frees the slot (``run_build``): no task
    waits or polls for it, and it never holds up another workspace's builds (its task just ends).
    """
    workspace_id = (
        Service.objects.filter(pk=service_id).values_list("workspace_id", flat=True).first()
    )
    if workspace_id is None:
        return None
    with transaction.atomic():
        # The workspace row lock makes "counting what runs" and the claim one step.
        if not list(Workspace.objects.select_for_update().filter(pk=workspace_id).values("pk")):
            return None
        builds = Build.objects.filter(service__workspace_id=workspace_id)
        busy = list(builds.filter(status=BuildStatus.BUILDING).values_list("service_id", flat=True))
        if len(busy) >= max(1, settings.BUILD_CONCURRENCY_PER_WORKSPACE):
            return None
        queued = builds.filter(status=BuildStatus.QUEUED).exclude(service_id__in=busy)
        for candidate in queued.order_by("created_at", "id")[:100]:
            now = timezone.now()
            claimed = transition(
                Build.objects.filter(pk=candidate.pk, status=BuildStatus.QUEUED),
                status=BuildStatus.BUILDING,
                started_at=now,
                heartbeat_at=now,
            )
            if claimed:
                return Build.objects.select_related("service").get(pk=candidate.pk)
    return None


def run_build(build_id: str, *, client: DockerClient | None = None) -> Build | None:
    """Run the queued builds of the build's workspace that its limits allow, oldest first, one
    after another, until none is left.

    The build asked for may be run here, or by the runner of an earlier build of the same
    workspace when that one finishes: either way it runs exactly once, after the ones of its
    service requested before it.
    """
    service_id = Build.objects.filter(pk=build_id).values_list("service_id", flat=True).first()
    if service_id is None:
        return None
    while (build := claim_next(service_id)) is not None:
        BuildRun(build, client=client).run()
    return Build.objects.get(pk=build_id)


# -- periodic work ---------------------------------------------------------------------------


def sweep_builds(*, now: datetime | None = None, batch: int = 100) -> dict[str, int]:
    """Fail builds whose worker stopped heart-beating, and re-send the oldest queued build of
    each service that has waited a while with nothing building, in a workspace below its limit
    (its message, or the runner that would have gone on with it, may be lost)."""
    now = now or timezone.now()
    failed = 0
    stale = Build.objects.filter(
        status=BuildStatus.BUILDING, heartbeat_at__lt=now - timedelta(seconds=HEARTBEAT_STALE)
    ).values_list("pk", flat=True)[:batch]
    for pk in list(stale):
        failed += transition(
            Build.objects.filter(
                pk=pk,
                status=BuildStatus.BUILDING,
                heartbeat_at__lt=now - timedelta(seconds=HEARTBEAT_STALE),
            ),
            status=BuildStatus.FAILED,
            finished_at=now,
            reason=(
                "the worker running this build stopped before the build finished; start a new build"
            ),
        )
    # Workspaces running their limit's worth of builds: their queued builds are claimed as those
    # end, by the runners that end them.
    full = (
        Build.objects.filter(status=BuildStatus.BUILDING)
        .values("service__workspace_id")
        .annotate(running=Count("id"))
        .filter(running__gte=max(1, settings.BUILD_CONCURRENCY_PER_WORKSPACE))
        .values("service__workspace_id")
    )
    waiting = (
        Build.objects.filter(
            status=BuildStatus.QUEUED, created_at__lt=now - timedelta(seconds=QUEUED_STALE)
        )
        .exclude(service__builds__status=BuildStatus.BUILDING)
        .exclude(service__workspace_id__in=full)
        .order_by("service_id", "created_at")
        .values_list("service_id", "pk")[: batch * 10]
    )
    resent: dict[str, str] = {}
    for service_id, pk in waiting:
        resent.setdefault(service_id, pk)
    for pk in list(resent.values())[:batch]:
        enqueue_build(pk)
    return {"failed": failed, "resent": len(resent)}


def cleanup_images(*, client: DockerClient | None = None, keep: int | None = None) -> list[str]:
    """Remove the image tags of old builds. Per service, keep the latest ``BUILD_KEEP_IMAGES``
    (at least 1) successful builds, the build new jobs run (``Service.current_build``: after a
    rollback, an older one) and every build a job still shown with its logs uses (an
    unfinished job, or a finished one within its workspace's log retention period), so an
    exact rerun (``jobs.launch.exact_image_of``) works for as long as its job is visible. A
    deleted service keeps none (nothing can run or rerun on it again). Removing a tag deletes
    the image once nothing else (another tag, a container) holds it; an image in use (a
    container of a job still stopping) is left for a later run. Returns the tags removed."""
    keep = max(1, settings.BUILD_KEEP_IMAGES if keep is None else keep)
    finished = Build.objects.filter(
        status__in=BUILD_FINISHED, image_removed_at__isnull=True
    ).exclude(image_tag="")
    candidates = finished.filter(service__deleted_at__isnull=True).exclude(
        Exists(_shown_jobs().filter(build_id=OuterRef("pk")))
    )
    removed: list[str] = []
    service_ids = set(candidates.values_list("service_id", flat=True))
    deleted_ids = set(
        finished.filter(service__deleted_at__isnull=False).values_list("service_id", flat=True)
    )
    if not service_ids and not deleted_ids:
        return removed
    client = client or docker.from_env(timeout=60)
    for service_id in sorted(service_ids | deleted_ids):
        if service_id in deleted_ids:
            doomed = finished.filter(service_id=service_id)
        else:
            latest = Build.objects.filter(service_id=service_id, status=BuildStatus.SUCCEEDED)
            kept = set(latest.order_by("-finished_at", "-id").values_list("id", flat=True)[:keep])
            service = Service.objects.filter(pk=service_id).first()
            current = service.current_build() if service is not None else None
            if current is not None:
                kept.add(current.pk)
            doomed = candidates.filter(service_id=service_id).exclude(pk__in=kept)
        for build in doomed:
            try:
                client.images.remove(build.image_tag)
            except NotFound:
                pass
            except APIError as exc:
                # 409: a container still uses it; try again on the next run.
                logger.info("cleanup: keeping %s for now: %s", build.image_tag, explain(exc))
                continue
            Build.objects.filter(pk=build.pk).update(image_removed_at=timezone.now())
            removed.append(build.image_tag)
    return removed


def _shown_jobs() -> QuerySet[Model]:
    """Jobs whose logs have not expired (``logs_purged_at`` is set only on finished jobs past
    their workspace's retention), reached through ``Build.jobs`` (the reverse of ``Job.build``):
    jobs sits above services, so services does not import it."""
    job_model: Any = Build.jobs.rel.related_model  # jobs.Job, which services does not import
    return job_model.objects.filter(logs_purged_at__isnull=True)

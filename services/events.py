"""Service events (Render's ``GET /v1/services/{serviceId}/events``), written where things happen.

``emit(service, type, **details)`` writes one ``ServiceEvent`` in the caller's transaction, so
the event commits with the change it tells of, or not at all. ``details`` is Render's details
object for ``type`` (the models of ``render.public_api``: ``JobRunEnded``, ``BuildStarted``,
``BuildEnded``, ``DeployStarted``, ``DeployEnded``, ``ServiceSuspended``…); ``trigger`` and
``end_reason`` build the parts the build and deploy shapes share. Oneoff's own extra fields stay
beside Render's (a client's generated model keeps them as additional properties).

Who emits what:

- ``build_started`` / ``build_ended``: a build claimed by a builder (``queued`` → ``building``),
  and a build reaching ``succeeded``, ``failed`` or ``canceled`` (a queued build canceled before
  it started too). Receivers of ``services.transitions.state_changed`` below.
- ``service_suspended`` / ``service_resumed``: a real change of ``Service.suspended`` made with
  ``transition()`` (the API's suspend and resume); suspending a suspended service tells nothing.
- ``job_run_ended``: a job reaching ``succeeded``, ``failed`` or ``canceled`` (``jobs.events``).
- ``deploy_started`` / ``deploy_ended``: whoever makes a build the service's deploy calls
  ``emit`` with ``trigger(...)`` and ``end_reason(...)``.

Events are kept for the workspace's log retention period (``purge_expired``, run with the log
purge): a job or build keeps its own outcome for ever, the event is its entry in the timeline.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from services.models import BUILD_FINISHED, Build, BuildStatus, Service, ServiceEvent, Workspace

log = logging.getLogger(__name__)

# Render's service event types (``serviceEventType``): what the list's ``type`` filter takes. A
# type Oneoff never writes is a valid filter that matches nothing.
EVENT_TYPES = (
    "artifact_fetch_failed",
    "artifact_source_changed",
    "autoscaling_config_changed",
    "autoscaling_ended",
    "autoscaling_started",
    "auto_deploy_disabled",
    "auto_deploy_enabled",
    "branch_deleted",
    "build_ended",
    "build_started",
    "commit_ignored",
    "cron_job_run_ended",
    "cron_job_run_started",
    "deploy_ended",
    "deploy_started",
    "disk_created",
    "disk_deleted",
    "disk_snapshot_restored",
    "disk_updated",
    "image_pull_failed",
    "initial_deploy_hook_ended",
    "initial_deploy_hook_started",
    "instance_count_changed",
    "job_run_ended",
    "maintenance_ended",
    "maintenance_mode_enabled",
    "maintenance_mode_uri_updated",
    "maintenance_started",
    "pipeline_minutes_exhausted",
    "plan_changed",
    "pre_deploy_ended",
    "pre_deploy_started",
    "server_available",
    "server_failed",
    "server_hardware_failure",
    "server_restarted",
    "service_disk_usage_high",
    "service_disk_usage_recovered",
    "service_resumed",
    "service_suspended",
    "suspender_added",
    "suspender_removed",
    "zero_downtime_redeploy_ended",
    "zero_downtime_redeploy_started",
)

# The integer ``status`` Render's build_ended and deploy_ended still require (deprecated there,
# its values undocumented): Oneoff sends 0 for succeeded, 1 for failed, 2 for canceled.
LEGACY_STATUS = {BuildStatus.SUCCEEDED: 0, BuildStatus.FAILED: 1, BuildStatus.CANCELED: 2}


def emit(service: Service | str, type: str, **details: Any) -> ServiceEvent:
    """Record that ``type`` happened to ``service`` (the model or its id) now, with Render's
    ``details`` for it, in the current transaction."""
    if type not in EVENT_TYPES:
        raise ValueError(f"{type!r} is not one of Render's service event types")
    service_id = service if isinstance(service, str) else service.pk
    return ServiceEvent.objects.create(service_id=service_id, type=type, details=details)


def trigger(
    *,
    first_build: bool = False,
    manual: bool = False,
    env_updated: bool = False,
    rollback: bool = False,
    rollback_target_deploy_id: str = "",
    new_commit: str = "",
) -> dict[str, Any]:
    """Render's ``BuildDeployTrigger`` (build_started, deploy_started): what started it."""
    data: dict[str, Any] = {
        "firstBuild": first_build,
        "envUpdated": env_updated,
        "manual": manual,
        "deployedByRender": False,
        "clearCache": False,
        "rollback": rollback,
    }
    if rollback_target_deploy_id:
        data["rollbackTargetDeployId"] = rollback_target_deploy_id
    if new_commit:
        data["newCommit"] = new_commit
    return data


def end_reason(
    *,
    build_failed: str = "",
    new_build: str = "",
    new_deploy: str = "",
    failure: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Render's ``BuildDeployEndReason`` (build_ended, deploy_ended): the build that failed,
    the newer build or deploy that replaced this one, or a ``FailureReason`` (whose ``evicted``
    is required). ``{}`` for one that simply succeeded."""
    data: dict[str, Any] = {}
    if build_failed:
        data["buildFailed"] = {"id": build_failed}
    if new_build:
        data["newBuild"] = {"id": new_build}
    if new_deploy:
        data["newDeploy"] = {"id": new_deploy}
    if failure is not None:
        data["failure"] = {"evicted": False, **failure}
    return data


@contextmanager
def on_its_own(what: str) -> Iterator[None]:
    """Run a receiver's writes in a savepoint of the change's transaction: whatever goes wrong
    there is logged and rolled back alone, and never stops the change (a job must end even if
    its event cannot be written)."""
    try:
        with transaction.atomic():
            yield
    except Exception:
        log.exception("could not record the service event of %s", what)


def _build_changed(pk: str, fields: dict[str, Any]) -> None:
    status = fields.get("status")
    if status != BuildStatus.BUILDING and status not in BUILD_FINISHED:
        return
    build = (
        Build.objects.filter(pk=pk)
        .values("service_id", "created_by_id", "created_at", "reason")
        .first()
    )
    if build is None:
        return
    if status == BuildStatus.BUILDING:
        first = not Build.objects.filter(
            service_id=build["service_id"], created_at__lt=build["created_at"]
        ).exists()
        manual = build["created_by_id"] is not None and not first
        emit(
            build["service_id"],
            "build_started",
            buildId=pk,
            trigger=trigger(first_build=first, manual=manual),
        )
        return
    details: dict[str, Any] = {
        "buildId": pk,
        "buildStatus": str(status),
        "reason": end_reason(build_failed=pk if status == BuildStatus.FAILED else ""),
        "status": LEGACY_STATUS[status],
    }
    message = fields.get("reason", build["reason"])
    if message:
        details["message"] = message  # Oneoff: why it failed or was canceled, in words
    emit(build["service_id"], "build_ended", **details)


def _service_changed(pk: str, fields: dict[str, Any]) -> None:
    if "suspended" in fields:
        emit(pk, "service_suspended" if fields["suspended"] else "service_resumed")


HANDLERS: dict[type, Callable[[str, dict[str, Any]], None]] = {
    Build: _build_changed,
    Service: _service_changed,
}


def state_changed(sender: type, pk: str, fields: dict[str, Any], **kwargs: object) -> None:
    """The receiver of ``services.transitions.state_changed`` for builds and services."""
    handler = HANDLERS.get(sender)
    if handler is not None:
        with on_its_own(f"{sender.__name__} {pk}"):
            handler(pk, fields)


def purge_expired(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Delete the events older than their workspace's log retention period, a batch at a time
    (short transactions); returns how many."""
    now = now or timezone.now()
    deleted = 0
    tiers = Workspace.objects.order_by().values_list("log_retention_days", flat=True).distinct()
    for days in sorted(set(tiers)):
        old = ServiceEvent.objects.filter(
            service__workspace__log_retention_days=days, created_at__lt=now - timedelta(days=days)
        )
        while ids := list(old.values_list("pk", flat=True)[:batch]):
            deleted += ServiceEvent.objects.filter(pk__in=ids).delete()[0]
    if deleted:
        log.info("purged %d service events past their workspace's retention", deleted)
    return deleted

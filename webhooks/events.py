"""From state changes to events: the receiver of ``services.transitions.state_changed``.

It runs inside the transaction of the change, so the ``Event`` and its ``Delivery`` rows commit
with it (an outbox): a process that dies after the commit loses nothing (the sweep sends what
is due), and a change that rolls back tells nothing. Only when some enabled webhook of the
workspace wants the event type are rows written; otherwise the cost is one query. The first
attempt of each delivery is sent once the transaction commits.

How Oneoff's changes map onto Render's event types:

- ``job_run_ended``: a job reaches ``succeeded``, ``failed`` or ``canceled``.
- ``build_started``: a build is claimed by a builder (``queued`` → ``building``).
- ``build_ended``: a build reaches ``succeeded``, ``failed`` or ``canceled`` (a queued build
  canceled before it started too).
- ``deploy_started`` and ``deploy_ended``: Oneoff has no deploy phase. A build that succeeds
  becomes the service's latest successful build, the one every new job runs: that instant is
  its deploy, so both are told then, after its ``build_ended``, with ``deployId`` the id of the
  deploy made with the build (``services.models.Deploy``; the build's own id for a build no
  deploy records) and ``deployStatus`` ``succeeded``. (A rollback, which deploys an existing
  build, tells no event yet.) A failed or canceled build deploys nothing and tells
  no deploy event.
- ``service_suspended`` / ``service_resumed``: the API's suspend and resume, when they change
  the service (suspending a suspended service tells nothing).
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from jobs.models import FINISHED, Job
from services.models import BUILD_FINISHED, Build, BuildStatus, Deploy, Service
from webhooks.models import Delivery, Event, Webhook

log = logging.getLogger(__name__)


def record(
    workspace_id: str,
    event_type: str,
    *,
    service_id: str,
    service_name: str,
    subject_id: str = "",
    details: dict | None = None,
) -> Event | None:
    """Write the event and a delivery per webhook that wants it (none: nothing is written), and
    send their first attempts once the surrounding transaction commits."""
    candidates = Webhook.objects.filter(workspace_id=workspace_id, enabled=True)
    hooks = [w for w in candidates.only("pk", "enabled", "event_filter") if w.wants(event_type)]
    if not hooks:
        return None
    event = Event.objects.create(
        workspace_id=workspace_id,
        type=event_type,
        service_id=service_id,
        service_name=service_name,
        subject_id=subject_id,
        details=details or {},
    )
    deliveries = Delivery.objects.bulk_create(
        [Delivery(webhook=hook, event=event, next_attempt_at=event.created_at) for hook in hooks]
    )
    ids = [d.pk for d in deliveries]

    def send() -> None:
        from webhooks.tasks import enqueue

        for pk in ids:
            enqueue(pk)

    transaction.on_commit(send)
    return event


def _job_ended(pk: str, fields: dict[str, Any]) -> None:
    if fields.get("status") not in FINISHED:
        return
    # The hot path (every job's end): one query when no webhook of its workspace is enabled.
    if not Webhook.objects.filter(workspace__jobs=pk, enabled=True).exists():
        return
    job = Job.objects.filter(pk=pk).values("workspace_id", "service_id", "service__name").first()
    if job is None:
        return
    record(
        job["workspace_id"],
        "job_run_ended",
        service_id=job["service_id"],
        service_name=job["service__name"],
        subject_id=pk,
        details={"jobId": pk, "status": fields["status"]},
    )


def _build_changed(pk: str, fields: dict[str, Any]) -> None:
    status = fields.get("status")
    if status != BuildStatus.BUILDING and status not in BUILD_FINISHED:
        return
    build = (
        Build.objects.filter(pk=pk)
        .values("service_id", "service__name", "service__workspace_id", "created_by_id")
        .first()
    )
    if build is None:
        return
    common = {
        "service_id": build["service_id"],
        "service_name": build["service__name"],
        "subject_id": pk,
    }
    workspace_id = build["service__workspace_id"]
    trigger = {"manual": build["created_by_id"] is not None}
    if status == BuildStatus.BUILDING:
        record(
            workspace_id,
            "build_started",
            details={"buildId": pk, "trigger": trigger},
            **common,
        )
        return
    record(
        workspace_id,
        "build_ended",
        details={"buildId": pk, "buildStatus": status, "message": fields.get("reason", "")},
        **common,
    )
    if status == BuildStatus.SUCCEEDED:
        deploy_id = (
            Deploy.objects.filter(build_id=pk, reuses_build=False)
            .order_by("created_at", "id")
            .values_list("id", flat=True)
            .first()
        ) or pk
        record(
            workspace_id,
            "deploy_started",
            details={"deployId": deploy_id, "buildId": pk, "trigger": trigger},
            **common,
        )
        record(
            workspace_id,
            "deploy_ended",
            details={"deployId": deploy_id, "buildId": pk, "deployStatus": "succeeded"},
            **common,
        )


def _service_changed(pk: str, fields: dict[str, Any]) -> None:
    if "suspended" not in fields:
        return
    service = Service.objects.filter(pk=pk).values("workspace_id", "name").first()
    if service is None:
        return
    record(
        service["workspace_id"],
        "service_suspended" if fields["suspended"] else "service_resumed",
        service_id=pk,
        service_name=service["name"],
        subject_id=pk,
    )


HANDLERS: dict[type, Callable[[str, dict[str, Any]], None]] = {
    Job: _job_ended,
    Build: _build_changed,
    Service: _service_changed,
}


def state_changed(sender: type, pk: str, fields: dict[str, Any], **kwargs: object) -> None:
    """Record the event in a savepoint of the change's transaction: whatever goes wrong here is
    logged and rolled back alone, and never stops the change (a job must end even if its
    event cannot be written)."""
    handler = HANDLERS.get(sender)
    if handler is None:
        return
    try:
        with transaction.atomic():
            handler(pk, fields)
    except Exception:
        log.exception("could not record the event of %s %s", sender.__name__, pk)

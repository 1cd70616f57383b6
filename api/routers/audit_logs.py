"""Render's workspace audit logs: ``GET /v1/owners/{ownerId}/audit-logs``, for admins only.

Render's query (``startTime``, ``endTime``, ``direction``, ``cursor``, ``limit``) and shape
(``[{"auditLog": {...}, "cursor": ...}]``); ``event`` is always one of Render's event names
(``audit.events``), Oneoff's own action is in ``action``. Beyond Render: the ``action``,
``actor`` and ``targetId`` filters the dashboard's audit page has too.
"""

from datetime import datetime
from typing import Literal

from ninja import Field, Query, Router, Schema

from api.auth import ApiRequest
from api.errors import errors, not_found
from api.fields import aware
from api.pagination import Page, decode_cursor, encode_cursor
from audit.events import entry_dict
from audit.models import AuditEntry
from services.access import ADMIN, check_role

router = Router(tags=["Audit Logs"])


class AuditLogQuery(Page):
    startTime: datetime | None = Field(None, description="Entries at or after this time.")
    endTime: datetime | None = Field(None, description="Entries before this time.")
    direction: Literal["backward", "forward"] = Field(
        "backward", description="backward: newest first (the default); forward: oldest first."
    )
    action: str | None = Field(
        None, max_length=48, description="Oneoff: an action (`job.create`) or family (`job`)."
    )
    actor: str | None = Field(
        None, max_length=254, description="Oneoff: an actor's email or username, or a key prefix."
    )
    targetId: str | None = Field(None, max_length=300, description="Oneoff: a target's id.")


class AuditLogActorOut(Schema):
    type: Literal["user", "rest_api", "system"]
    email: str | None = None
    id: str | None = Field(None, description="The API key's prefix, for `rest_api`.")
    name: str | None = Field(None, description="Oneoff: the username.")


class AuditLogOut(Schema):
    id: str
    timestamp: str
    event: str = Field(description="Render's event name (the nearest one for Oneoff's own).")
    status: Literal["success", "error"]
    actor: AuditLogActorOut
    metadata: dict[str, str]
    action: str = Field(description="Oneoff's action, e.g. `job.create`, `env_var.set`.")
    targetType: str
    targetId: str


class AuditLogWithCursor(Schema):
    auditLog: AuditLogOut
    cursor: str


@router.get(
    "/owners/{ownerId}/audit-logs",
    response={200: list[AuditLogWithCursor], **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="list-owner-audit-logs",
    summary="List workspace audit logs",
    description="Who changed what, when and from where: job runs and cancels, env var names set "
    "and deleted, services, builds, API keys, log streams, webhooks and sign-ins. Admins only "
    "(a read-only admin key may read them).",
)
def list_audit_logs(request: ApiRequest, ownerId: str, query: Query[AuditLogQuery]):
    if ownerId != request.auth.workspace_id:
        raise not_found("owner")
    check_role(request.auth.role, ADMIN)
    entries = AuditEntry.objects.for_workspace(request.auth.workspace).matching(
        action=query.action or "",
        actor=query.actor or "",
        target_id=query.targetId or "",
        since=aware(query.startTime, "startTime"),
        until=aware(query.endTime, "endTime"),
    )
    after = decode_cursor(query.cursor, "aud") if query.cursor else None
    page = entries.page(after, query.limit, oldest_first=query.direction == "forward")
    return [{"auditLog": entry_dict(e), "cursor": encode_cursor(e.created_at, e.id)} for e in page]

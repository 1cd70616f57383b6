"""Render's own generated client (PyPI ``render``) lists and pages a live Oneoff's audit logs:
every entry parses (``event`` is a closed enum there), cursors page both ways, the time window
bounds, and a viewer's or another workspace's key gets Render's error shape."""

from datetime import timedelta

import pytest
from render.public_api.api.audit_logs import list_owner_audit_logs
from render.public_api.api.services import resume_service, suspend_service
from render.public_api.models import (
    AuditLogActorType,
    AuditLogEvent,
    AuditLogStatus,
    AuditLogWithCursor,
    Error,
    LogDirection,
)

from audit.events import ACTIONS, CRON_EVENTS
from audit.models import AuditEntry, AuditStatus
from audit.trail import Actor, record
from services.models import ApiKey
from tests.helpers import render_client

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_every_event_is_one_of_renders():
    for event in [e for e, _ in ACTIONS.values()] + list(CRON_EVENTS.values()):
        AuditLogEvent(event)  # a ValueError here would break Render's client on the whole page


def test_renders_client_lists_and_pages_the_audit_logs(live_server, owner, workspace, service):
    with render_client(live_server, owner, workspace) as render:
        # Two real changes through the API, and every other action recorded directly.
        assert suspend_service.sync_detailed(service.id, client=render).status_code == 202
        assert resume_service.sync_detailed(service.id, client=render).status_code == 202
        others = sorted(set(ACTIONS) - {"service.suspend", "service.resume"})
        for action in others:
            status = AuditStatus.FAILURE if action == "signin.failed" else AuditStatus.SUCCESS
            record(Actor(user=owner), workspace, action, target_id="x", status=status)
        total = len(others) + 2

        seen: list[AuditLogWithCursor] = []
        cursor = None
        while True:
            kwargs = {"cursor": cursor} if cursor else {}
            page = list_owner_audit_logs.sync(workspace.id, client=render, limit=5, **kwargs)
            assert isinstance(page, list)
            assert all(isinstance(item, AuditLogWithCursor) for item in page)
            seen += page
            if len(page) < 5:
                break
            cursor = page[-1].cursor
        assert len(seen) == total
        assert len({item.audit_log.id for item in seen}) == total
        stamps = [item.audit_log.timestamp for item in seen]
        assert stamps == sorted(stamps, reverse=True)  # newest first

        # The oldest two are the API's own: by the key, from the live server's client address.
        suspended, resumed = seen[-1].audit_log, seen[-2].audit_log
        assert suspended.event == AuditLogEvent.SUSPENDSERVICEEVENT
        assert resumed.event == AuditLogEvent.RESUMESERVICEEVENT
        assert suspended.status == AuditLogStatus.SUCCESS
        assert suspended.actor.type_ == AuditLogActorType.REST_API
        assert suspended.actor.email == owner.email
        assert suspended.actor.id == ApiKey.objects.get(workspace=workspace).prefix
        assert suspended.metadata["service"] == service.id
        assert suspended.metadata["address"] == "127.0.0.1"
        assert suspended["action"] == "service.suspend"
        failed = next(i.audit_log for i in seen if i.audit_log["action"] == "signin.failed")
        assert failed.status == AuditLogStatus.ERROR
        assert failed.event == AuditLogEvent.LOGINEVENT

        # Oldest first, Render's direction=forward, paged too.
        forward = list_owner_audit_logs.sync(
            workspace.id, client=render, direction=LogDirection.FORWARD, limit=3
        )
        more = list_owner_audit_logs.sync(
            workspace.id,
            client=render,
            direction=LogDirection.FORWARD,
            limit=3,
            cursor=forward[-1].cursor,
        )
        ids = [i.audit_log.id for i in forward + more]
        assert ids == [i.audit_log.id for i in reversed(seen)][:6]

        # A time window: startTime inclusive, endTime exclusive.
        first = AuditEntry.objects.get(pk=suspended.id)
        window = list_owner_audit_logs.sync(
            workspace.id,
            client=render,
            start_time=first.created_at,
            end_time=first.created_at + timedelta(microseconds=1),
        )
        assert [i.audit_log.id for i in window] == [suspended.id]


def test_renders_client_gets_errors_for_a_viewer_and_another_owner(
    live_server, viewer, workspace, outsider, other_workspace
):
    with render_client(live_server, viewer, workspace) as render:
        refused = list_owner_audit_logs.sync_detailed(workspace.id, client=render)
        assert refused.status_code == 403
        assert isinstance(refused.parsed, Error)
    with render_client(live_server, outsider, other_workspace) as render:
        hidden = list_owner_audit_logs.sync_detailed(workspace.id, client=render)
        assert hidden.status_code == 404
        assert isinstance(hidden.parsed, Error)
        assert list_owner_audit_logs.sync(other_workspace.id, client=render) == []

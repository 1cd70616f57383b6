"""Webhooks, Render's paths and shapes: ``/v1/webhooks`` (list, create),
``/v1/webhooks/{webhookId}`` (retrieve, update, delete) and ``/v1/webhooks/{webhookId}/events``
(every attempt to send an event). Any key of the workspace reads them, the secret only an admin's;
changes need an admin's read-write key. Beyond Render: ``POST
/v1/webhooks/{webhookId}/events/{eventId}/resend``. Rules and shapes live in
``webhooks.hooks``."""

from ninja import Query, Router, Status

from api.auth import ApiRequest, require_admin
from api.errors import bad_request, errors
from api.fields import aware
from api.pagination import encode_cursor, paginate
from api.responses import empty_response
from api.schemas.webhooks import (
    WebhookCreateIn,
    WebhookEventListQuery,
    WebhookEventWithCursor,
    WebhookListQuery,
    WebhookOut,
    WebhookUpdateIn,
    WebhookWithCursor,
)
from audit.trail import actor_of
from services.models import Role
from webhooks import hooks

router = Router(tags=["Webhooks"])


def _is_admin(request: ApiRequest) -> bool:
    return Role.can_administer(request.auth.role) and not request.auth.read_only


@router.get(
    "/webhooks",
    response={200: list[WebhookWithCursor], **errors(400)},
    operation_id="list-webhooks",
    summary="List webhooks",
    description="The workspace's webhooks, newest first.",
)
def list_webhooks(request: ApiRequest, filters: Query[WebhookListQuery]):
    workspace = request.auth.workspace
    owners = filters.ownerId or []
    if owners and workspace.id not in owners:
        return []
    secret = _is_admin(request)
    return [
        {
            "webhook": hooks.webhook_dict(w, with_secret=secret),
            "cursor": encode_cursor(w.created_at, w.id),
        }
        for w in paginate(workspace.webhooks.all(), filters, "whk")
    ]


@router.post(
    "/webhooks",
    response={201: WebhookOut, **errors(400, 403)},
    operation_id="create-webhook",
    summary="Create webhook",
    description="Admins only. The answer carries the generated secret.",
)
def create_webhook(request: ApiRequest, payload: WebhookCreateIn):
    require_admin(request)
    workspace = request.auth.workspace
    if payload.ownerId != workspace.id:
        raise bad_request("ownerId", "unknown owner; use an id from GET /v1/owners")
    webhook = hooks.create_webhook(
        workspace,
        name=payload.name,
        url=payload.url,
        enabled=payload.enabled,
        event_filter=list(payload.eventFilter),
        actor=actor_of(request),
    )
    return Status(201, hooks.webhook_dict(webhook, with_secret=True))


@router.get(
    "/webhooks/{webhookId}",
    response={200: WebhookOut, **errors(404)},
    operation_id="retrieve-webhook",
    summary="Retrieve webhook",
)
def retrieve_webhook(request: ApiRequest, webhookId: str):
    webhook = hooks.webhook_in(request.auth.workspace, webhookId)
    return hooks.webhook_dict(webhook, with_secret=_is_admin(request))


@router.patch(
    "/webhooks/{webhookId}",
    response={200: WebhookOut, **errors(400, 403, 404)},
    operation_id="update-webhook",
    summary="Update webhook",
    description="Admins only. Fields left out keep their values.",
)
def update_webhook(request: ApiRequest, webhookId: str, payload: WebhookUpdateIn):
    webhook = hooks.webhook_in(request.auth.workspace, webhookId)
    require_admin(request)
    changes = {}
    for field, name in (
        ("name", "name"),
        ("url", "url"),
        ("enabled", "enabled"),
        ("eventFilter", "event_filter"),
    ):
        if field in payload.model_fields_set:
            value = getattr(payload, field)
            if value is None:
                raise bad_request(field, "must not be null")
            changes[name] = list(value) if field == "eventFilter" else value
    hooks.update_webhook(webhook, actor=actor_of(request), **changes)
    return hooks.webhook_dict(webhook, with_secret=True)


@router.delete(
    "/webhooks/{webhookId}",
    response={204: None, **errors(403, 404)},
    operation_id="delete-webhook",
    summary="Delete webhook",
    description="Admins only. Its deliveries and their attempts go with it.",
)
def delete_webhook(request: ApiRequest, webhookId: str):
    webhook = hooks.webhook_in(request.auth.workspace, webhookId)
    require_admin(request)
    hooks.delete_webhook(webhook, actor=actor_of(request))
    return empty_response(request, 204)


@router.get(
    "/webhooks/{webhookId}/events",
    response={200: list[WebhookEventWithCursor], **errors(400, 404)},
    exclude_none=True,
    operation_id="list-webhook-events",
    summary="List webhook events",
    description="Every attempt to send an event to the webhook, newest first: its status code "
    "and the start of the response body, or its error.",
)
def list_webhook_events(request: ApiRequest, webhookId: str, filters: Query[WebhookEventListQuery]):
    webhook = hooks.webhook_in(request.auth.workspace, webhookId)
    attempts = hooks.attempts(webhook)
    if filters.sentBefore:
        attempts = attempts.filter(sent_at__lt=aware(filters.sentBefore, "sentBefore"))
    if filters.sentAfter:
        attempts = attempts.filter(sent_at__gte=aware(filters.sentAfter, "sentAfter"))
    return [
        {"webhookEvent": hooks.attempt_dict(a), "cursor": encode_cursor(a.created_at, a.id)}
        for a in paginate(attempts, filters, "whe")
    ]


@router.post(
    "/webhooks/{webhookId}/events/{eventId}/resend",
    response={202: None, **errors(403, 404)},
    operation_id="resend-webhook-event",
    summary="Re-send an event (Oneoff)",
    description="Admins only. Sends the event again now (same body, same `webhook-id`), with a "
    "fresh retry schedule.",
)
def resend_webhook_event(request: ApiRequest, webhookId: str, eventId: str):
    webhook = hooks.webhook_in(request.auth.workspace, webhookId)
    require_admin(request)
    hooks.resend_event(webhook, eventId)
    return empty_response(request, 202)

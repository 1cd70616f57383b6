"""Webhook settings: the one place their rules, their ownership checks and their JSON shapes
are written (the API and the dashboard use them)."""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from audit.trail import Actor, record
from services.errors import Invalid, NotFound, Refused
from services.models import Workspace
from webhooks.delivery import check_url, resend
from webhooks.models import EVENT_TYPES, Attempt, Delivery, Webhook

# Ownership: an outsider's id is a NotFound (404), like a missing one.


def webhook_in(workspace: Workspace, webhook_id: str) -> Webhook:
    webhook = Webhook.objects.filter(workspace=workspace, pk=webhook_id).first()
    if webhook is None:
        raise NotFound("webhook not found")
    return webhook


def delivery_of(webhook: Webhook, event_id: str) -> Delivery:
    delivery = Delivery.objects.filter(webhook=webhook, event_id=event_id).first()
    if delivery is None:
        raise NotFound(f"no event {event_id} was sent to this webhook")
    return delivery


# Rules.


def clean_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("name", "must be a non-empty string")
    value = value.strip()
    if len(value) > 100:
        raise Invalid("name", "must be at most 100 characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Invalid("name", "must not contain control characters")
    return value


def clean_filter(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid("eventFilter", "must be a list of event types")
    unknown = [v for v in value if v not in EVENT_TYPES]
    if unknown:
        raise Invalid(
            "eventFilter",
            f"{unknown[0]!r} is not an event type Oneoff sends; use any of "
            + ", ".join(EVENT_TYPES)
            + " (an empty list means all)",
        )
    return sorted(set(value), key=EVENT_TYPES.index)


def _audit(actor: Actor | None, action: str, webhook: Webhook, **details: Any) -> None:
    """Record a change of a webhook: its name and the URL's scheme and host only (the whole
    URL is often a bearer credential, like the secret, which is never recorded)."""
    url = urlsplit(webhook.url)
    details = {"name": webhook.name, "url": f"{url.scheme}://{url.hostname or ''}", **details}
    record(
        actor,
        webhook.workspace_id,
        action,
        target_type="webhook",
        target_id=webhook.id,
        metadata=details,
    )


def create_webhook(
    workspace: Workspace,
    *,
    name: str,
    url: str,
    enabled: bool,
    event_filter: list[str],
    actor: Actor | None = None,
) -> Webhook:
    limit = settings.WEBHOOKS_PER_WORKSPACE
    if Webhook.objects.filter(workspace=workspace).count() >= limit:
        raise Refused(f"a workspace has at most {limit} webhooks (WEBHOOKS_PER_WORKSPACE)")
    with transaction.atomic():
        webhook = Webhook.objects.create(
            workspace=workspace,
            name=clean_name(name),
            url=check_url(url),
            enabled=bool(enabled),
            event_filter=clean_filter(event_filter),
        )
        _audit(actor, "webhook.create", webhook, enabled=webhook.enabled)
    return webhook


def update_webhook(webhook: Webhook, *, actor: Actor | None = None, **changes: Any) -> Webhook:
    """Change the given fields (``name``, ``url``, ``enabled``, ``event_filter``)."""
    if "name" in changes:
        webhook.name = clean_name(changes["name"])
    if "url" in changes:
        url = changes["url"]
        if not isinstance(url, str):
            raise Invalid("url", "must be an https:// URL")
        if url.strip() != webhook.url:
            webhook.url = check_url(url)
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise Invalid("enabled", "must be true or false")
        webhook.enabled = changes["enabled"]
    if "event_filter" in changes:
        webhook.event_filter = clean_filter(changes["event_filter"])
    # Only these: the sending lease (``sending_until``) is the workers'.
    with transaction.atomic():
        webhook.save(update_fields=["name", "url", "enabled", "event_filter", "updated_at"])
        _audit(actor, "webhook.update", webhook, fields=sorted(changes))
    return webhook


def delete_webhook(webhook: Webhook, *, actor: Actor | None = None) -> None:
    """Delete a webhook with its deliveries and their attempts. Its deliveries are locked
    first: an attempt in flight records itself under that lock (``delivery._record``), so it
    lands wholly before the delete collects what to remove, or finds its delivery gone."""
    with transaction.atomic():
        list(Delivery.objects.select_for_update().filter(webhook=webhook).values_list("pk"))
        _audit(actor, "webhook.delete", webhook)
        webhook.delete()


def resend_event(webhook: Webhook, event_id: str) -> Delivery:
    """Send an event to the webhook again (after commit), whatever became of it."""
    delivery = delivery_of(webhook, event_id)
    resend(delivery)

    def send() -> None:
        from webhooks.tasks import enqueue

        enqueue(delivery.pk)

    transaction.on_commit(send)
    return delivery


def attempts(webhook: Webhook) -> QuerySet[Attempt]:
    return Attempt.objects.filter(webhook=webhook).select_related("delivery__event")


# Shapes.


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def webhook_dict(webhook: Webhook, *, with_secret: bool) -> dict:
    """Render's ``webhook``. The secret and the whole URL are for admins; others get ``""`` for
    the secret (Render's shape requires the field) and the URL's scheme and host (a receiver's
    URL is often a bearer credential: ``Webhook.shown_url``)."""
    return {
        "id": webhook.id,
        "url": webhook.url if with_secret else webhook.shown_url,
        "name": webhook.name,
        "secret": webhook.secret if with_secret else "",
        "enabled": webhook.enabled,
        "eventFilter": list(webhook.event_filter),
        "ownerId": webhook.workspace_id,
        "createdAt": _iso(webhook.created_at),
        "updatedAt": _iso(webhook.updated_at),
    }


def attempt_dict(attempt: Attempt) -> dict:
    """Render's ``webhookEvent``: one attempt to send an event (``statusCode`` and
    ``responseBody`` when the receiver answered, ``error`` when it did not or the answer was a
    failure), plus Oneoff's ``attempt`` number and ``deliveryState``."""
    event = attempt.delivery.event
    data: dict[str, Any] = {
        "id": attempt.id,
        "eventId": event.id,
        "eventType": event.type,
        "sentAt": _iso(attempt.sent_at),
        "attempt": attempt.number,
        "durationMs": attempt.duration_ms,
        "deliveryState": attempt.delivery.state,
    }
    if attempt.status_code is not None:
        data["statusCode"] = attempt.status_code
        data["responseBody"] = attempt.response_body
    if attempt.error:
        data["error"] = attempt.error
    return data

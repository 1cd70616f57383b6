"""Webhooks in Render's shapes (``webhook``, ``webhookWithCursor``, ``webhookEvent``,
``webhookEventWithCursor`` and the create and update bodies); the shapes themselves are written
once, in ``webhooks.hooks``."""

from datetime import datetime
from typing import Literal

from ninja import Field, Schema
from pydantic import ConfigDict
from pydantic.json_schema import JsonDict

from api.pagination import Page

EventType = Literal[
    "job_run_ended",
    "build_started",
    "build_ended",
    "deploy_started",
    "deploy_ended",
    "service_suspended",
    "service_resumed",
]
DATETIME: JsonDict = {"format": "date-time"}
URL = Field(
    max_length=2000,
    description="An https:// URL. Its host must resolve to public addresses only, unless the "
    "operator allow-lists them (`EGRESS_ALLOW`).",
)
NAME = Field(max_length=100, description="A name for the webhook.")
EVENT_FILTER = Field(
    description="The event types that trigger the webhook; an empty list means all of them."
)


class WebhookOut(Schema):
    id: str = Field(pattern=r"^whk-[0-9a-v]{20}$", examples=["whk-d04m9b1r0fns73ckp94f"])
    url: str
    name: str
    secret: str = Field(
        description="`whsec_…`: signs every delivery (Standard Webhooks). Shown to workspace "
        'admins only; `""` for everyone else.'
    )
    enabled: bool
    eventFilter: list[EventType]
    ownerId: str = Field(description="Oneoff: the workspace.")
    createdAt: str = Field(json_schema_extra=DATETIME)
    updatedAt: str = Field(json_schema_extra=DATETIME)


class WebhookWithCursor(Schema):
    webhook: WebhookOut
    cursor: str


class WebhookCreateIn(Schema):
    ownerId: str = Field(max_length=64, description="The workspace that owns the webhook.")
    url: str = URL
    name: str = NAME
    enabled: bool = Field(strict=True)
    eventFilter: list[EventType] = EVENT_FILTER

    model_config = ConfigDict(extra="forbid")


class WebhookUpdateIn(Schema):
    name: str | None = Field(None, max_length=100)
    url: str | None = Field(None, max_length=2000)
    enabled: bool | None = Field(None, strict=True)
    eventFilter: list[EventType] | None = None

    model_config = ConfigDict(extra="forbid")


class WebhookListQuery(Page):
    ownerId: list[str] | None = Field(
        None, max_length=20, description="Owner ids (repeated, or comma-separated)."
    )


class WebhookEventOut(Schema):
    id: str = Field(description="The attempt's id.", pattern=r"^whe-[0-9a-v]{20}$")
    eventId: str = Field(description="The event's id, also its deliveries' `webhook-id` header.")
    eventType: EventType
    sentAt: str = Field(json_schema_extra=DATETIME)
    statusCode: int | None = Field(None, description="The receiver's HTTP status.")
    responseBody: str | None = Field(
        None, description="The start of the receiver's answer (at most 2048 characters)."
    )
    error: str | None = Field(
        None, description="Why the attempt failed without an answer (e.g. a timeout)."
    )
    attempt: int = Field(description="Oneoff: the attempt's number for this event (1 first).")
    durationMs: int = Field(description="Oneoff: how long the attempt took.")
    deliveryState: Literal["pending", "delivered", "failed"] = Field(
        description="Oneoff: where the event's delivery stands now (pending: a retry is due)."
    )


class WebhookEventWithCursor(Schema):
    webhookEvent: WebhookEventOut
    cursor: str


class WebhookEventListQuery(Page):
    sentBefore: datetime | None = None
    sentAfter: datetime | None = None

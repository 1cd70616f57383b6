"""Webhooks (Render's): where a workspace's events are POSTed, signed; the events (an outbox
written in the same transaction as the change they tell of), one delivery per webhook and event,
and every attempt of each."""

import base64
import secrets
from typing import Self
from urllib.parse import urlsplit

from django.contrib.auth.models import AnonymousUser, User
from django.db import models
from django.utils import timezone

from services.crypto import EncryptedTextField
from services.models import PublicIdField, Workspace

# Render's event types that Oneoff sends (``render.public_api.models.EventType`` has the rest).
EVENT_TYPES = (
    "job_run_ended",
    "build_started",
    "build_ended",
    "deploy_started",
    "deploy_ended",
    "service_suspended",
    "service_resumed",
)


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookQuerySet(models.QuerySet):
    def for_user(self, user: User | AnonymousUser) -> Self:
        if not user.is_authenticated:
            return self.none()
        return self.filter(workspace__memberships__user=user)


class Webhook(models.Model):
    """A destination URL for the workspace's events (all of them when ``event_filter`` is
    empty). The secret signs every delivery; encrypted at rest, shown to admins only."""

    id = PublicIdField(prefix="whk")
    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=100)
    url = models.CharField(max_length=2000)
    enabled = models.BooleanField(default=True)
    event_filter = models.JSONField(default=list, blank=True)
    secret = EncryptedTextField(default=new_secret)
    # The sending lease: one worker at a time sends to a webhook (``delivery.deliver``), so a
    # slow receiver holds one thread of the installation, never every thread.
    sending_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WebhookQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at", "-id"], name="webhook_list")]

    def __str__(self) -> str:
        return self.name

    def wants(self, event_type: str) -> bool:
        return self.enabled and (not self.event_filter or event_type in self.event_filter)

    @property
    def shown_url(self) -> str:
        """The URL as non-admins see it: scheme, host and port only. Many receivers' URLs are
        bearer credentials (Slack's, Discord's and Zapier's carry a token in the path or query,
        and any URL may carry ``user:password@``), so the rest is an admin's, like the secret."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        rest = parts.path not in ("", "/") or parts.query or parts.fragment
        return f"{parts.scheme}://{host}{port}/{'…' if rest else ''}"


class Event(models.Model):
    """Something that happened (Render's event, ``evt-…``). ``details`` is taken in the
    transaction of the change; ``body``, the exact JSON every delivery sends (so a redelivery is
    the same message), is made on the first attempt and never changed."""

    id = PublicIdField(prefix="evt")
    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="+")
    type = models.CharField(max_length=40)
    service_id = models.CharField(max_length=32, blank=True)
    service_name = models.CharField(max_length=100, blank=True)
    subject_id = models.CharField(max_length=32, blank=True, help_text="The job or build.")
    details = models.JSONField(default=dict)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class DeliveryState(models.TextChoices):
    PENDING = "pending"  # to send, now or at next_attempt_at
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # every attempt of the retry schedule failed (or the webhook was off)


class Delivery(models.Model):
    """One event to one webhook. Claimed per attempt with a compare-and-set on ``locked_until``,
    so two workers never send it at once; retried on the schedule in ``delivery.SCHEDULE``."""

    webhook = models.ForeignKey(Webhook, models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, models.CASCADE, related_name="deliveries")
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0, help_text="All attempts, re-sends too.")
    round_attempts = models.PositiveIntegerField(
        default=0, help_text="Attempts since the last re-send (the retry schedule's position)."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["webhook", "event"], name="one_delivery_per_event")
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["webhook", "-created_at", "-id"], name="delivery_list"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} to {self.webhook_id} ({self.state})"


class Attempt(models.Model):
    """One POST of a delivery: Render's ``webhookEvent`` (status code, response body, error).
    The response body is an excerpt (``WEBHOOK_RESPONSE_MAX_CHARS``): a receiver cannot fill
    the database."""

    id = PublicIdField(prefix="whe")
    delivery = models.ForeignKey(Delivery, models.CASCADE, related_name="attempt_set")
    webhook = models.ForeignKey(Webhook, models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    sent_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["webhook", "-created_at", "-id"], name="attempt_list")]

    def __str__(self) -> str:
        return f"{self.id}: {self.status_code or self.error}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

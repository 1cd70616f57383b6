"""``AuditEntry``: one change of state by a person or an API key. Append-only for the app.

An entry is written once (``audit.trail.record``) and never changed: ``save`` of an existing
entry, ``delete`` and the queryset's ``update`` / ``delete`` all raise ``AppendOnly``, and the
Django admin shows entries read-only. The one way entries leave is the retention purge
(``audit.retention.purge``, run by beat), a raw bulk DELETE of entries older than
``AUDIT_RETENTION_DAYS``; a workspace deleted from the admin takes its entries with it.
"""

from datetime import datetime
from typing import Any, NoReturn, Self

from django.conf import settings
from django.db import models
from django.utils import timezone

from services.keyset import keyset_page
from services.models import PublicIdField, Workspace


def text_of(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(text_of(v) for v in value)
    return "" if value is None else str(value)


class AppendOnly(Exception):
    """Audit entries are never changed or deleted by the app."""


class AuditStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnly("audit entries cannot be updated")

    def delete(self) -> NoReturn:
        raise AppendOnly("audit entries cannot be deleted (retention purges old ones)")

    def for_workspace(self, workspace: Workspace) -> Self:
        return self.filter(workspace=workspace)

    def matching(
        self,
        *,
        action: str = "",
        actor: str = "",
        target_id: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Self:
        """The filters of the API and the audit page: an action (``job.create``, or a family:
        ``job``), an actor (their email or username, or an API key's prefix), a target id, and
        ``since`` (inclusive) / ``until`` (exclusive)."""
        entries = self
        if action:
            entries = entries.filter(
                models.Q(action=action) | models.Q(action__startswith=action + ".")
            )
        if actor:
            entries = entries.filter(
                models.Q(actor_email__iexact=actor)
                | models.Q(actor_name__iexact=actor)
                | models.Q(key_prefix=actor)
            )
        if target_id:
            entries = entries.filter(target_id=target_id)
        if since is not None:
            entries = entries.filter(created_at__gte=since)
        if until is not None:
            entries = entries.filter(created_at__lt=until)
        return entries

    def page(self, after: tuple[datetime, str] | None, limit: int, *, oldest_first: bool) -> list:
        """A keyset page on (created_at, id): newest first (``services.keyset``), or oldest
        first for Render's ``direction=forward``."""
        if not oldest_first:
            return keyset_page(self, after, limit)
        entries = self
        if after is not None:
            created_at, pk = after
            entries = entries.filter(created_at__gte=created_at).exclude(
                created_at=created_at, pk__lte=pk
            )
        return list(entries.order_by("created_at", "pk")[:limit])


class AuditEntry(models.Model):
    id = PublicIdField(prefix="aud")
    # Null only for a failed sign-in with a username nobody has (no workspace to show it to).
    workspace = models.ForeignKey(
        Workspace, models.CASCADE, null=True, blank=True, related_name="audit_entries"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Who: the user (kept as a copy too, so an entry outlives its user), and the API key's
    # prefix when the change came through the API.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    actor_email = models.CharField(max_length=254, blank=True)
    key_prefix = models.CharField(max_length=16, blank=True)
    # From where: the client address as the sign-in throttle reads it (PROXY_COUNT aware).
    address = models.CharField(max_length=64, blank=True)
    # What: Oneoff's action name (audit.events.ACTIONS), the target, and small non-secret
    # details (never an env var's value).
    action = models.CharField(max_length=48)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=300, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=AuditStatus.choices, default=AuditStatus.SUCCESS
    )

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["workspace", "-created_at", "-id"], name="audit_list"),
            # The target id filter (a job's or a service's history): without it, a rare id
            # scanned 200k entries (60 ms a page); with it, 6 ms like any other page.
            models.Index(
                fields=["workspace", "target_id", "-created_at", "-id"], name="audit_target"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("audit entries cannot be updated")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnly("audit entries cannot be deleted (retention purges old ones)")

    @property
    def details(self) -> list[tuple[str, str]]:
        """The metadata as text, for the page and for Render's map of strings."""
        return [(str(key), text_of(value)) for key, value in self.metadata.items()]

    @property
    def actor_label(self) -> str:
        if self.actor_email or self.actor_name:
            return self.actor_email or self.actor_name
        return f"API key {self.key_prefix}" if self.key_prefix else "system"

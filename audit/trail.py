"""Writing the audit trail: ``record(actor, workspace, action, ...)``, called by the one place
each audited change happens (``jobs.launch``, ``webhooks.hooks``, ``logstreams.streams``) or,
where the API and the dashboard change things each in their own code, by each of them.

The faces make the ``Actor`` of a request with ``actor_of(request)``: the API key's user and
prefix for the API, the signed-in user for the dashboard, and in both the client address as the
sign-in throttle reads it (the ``AXES_CLIENT_IP_CALLABLE`` setting, ``PROXY_COUNT`` aware). A
domain function given no actor records nothing: it was called by the system (a task, a test,
a management command), not by a person or a key. An entry is written in the caller's
transaction, so a change rolled back leaves no entry behind.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils.module_loading import import_string

from audit.events import ACTIONS
from audit.models import AuditEntry, AuditStatus
from services.models import ApiKey, Build, Workspace

# Metadata is small: a few short values, never a secret (an env var's value is never given).
META_MAX_KEYS = 20
META_MAX_CHARS = 200


@dataclass(frozen=True)
class Actor:
    """Who asked for a change, and from where."""

    user: User | None = None
    key_prefix: str = ""
    address: str = ""


def client_address(request: HttpRequest) -> str:
    """The client's address by the very callable django-axes counts failed sign-ins with."""
    reader = import_string(settings.AXES_CLIENT_IP_CALLABLE)
    return (reader(request) or "")[:64]


def actor_of(request: HttpRequest) -> Actor:
    """The actor of an API request (``request.auth``, its key) or of a dashboard request (the
    signed-in user)."""
    address = client_address(request)
    key = getattr(request, "auth", None)
    if isinstance(key, ApiKey):
        return Actor(user=key.user, key_prefix=key.prefix, address=address)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Actor(address=address)
    return Actor(user=user, address=address)


def _small(metadata: dict[str, Any] | None) -> dict[str, Any]:
    small: dict[str, Any] = {}
    for key, value in list((metadata or {}).items())[:META_MAX_KEYS]:
        if isinstance(value, str):
            value = value[:META_MAX_CHARS]
        elif isinstance(value, list | tuple):
            value = [str(v)[:META_MAX_CHARS] for v in value[:META_MAX_KEYS]]
        elif not isinstance(value, bool | int | float) and value is not None:
            value = str(value)[:META_MAX_CHARS]
        small[str(key)[:META_MAX_CHARS]] = value
    return small


def record(
    actor: Actor | None,
    workspace: Workspace | str | None,
    action: str,
    *,
    target_type: str = "",
    target_id: str = "",
    metadata: dict[str, Any] | None = None,
    status: str = AuditStatus.SUCCESS,
    actor_name: str = "",
) -> AuditEntry | None:
    """Append one entry (none without an actor: the system's own changes are not audited) to
    ``workspace`` (or its id). ``actor_name`` names an actor with no user (a failed sign-in's
    attempted username)."""
    if actor is None:
        return None
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    name = actor_name or (user.get_username() if user is not None else "")
    email = getattr(user, "email", "") or ""
    workspace_id = workspace.pk if isinstance(workspace, Workspace) else workspace
    return AuditEntry.objects.create(
        workspace_id=workspace_id,
        actor=user,
        actor_name=name[:150],
        actor_email=email[:254],
        key_prefix=actor.key_prefix,
        address=actor.address,
        action=action,
        target_type=target_type,
        target_id=target_id[:300],
        metadata=_small(metadata),
        status=status,
    )


def record_build(actor: Actor | None, build: Build) -> None:
    """A build started by hand (the API's and the dashboard's; ``services`` cannot call us)."""
    details = {"service": build.service_id}
    if build.commit_id:
        details["commit"] = build.commit_id
    if build.image_ref:
        details["image"] = build.image_ref
    record(
        actor,
        build.service.workspace_id,
        "build.trigger",
        target_type="build",
        target_id=build.id,
        metadata=details,
    )

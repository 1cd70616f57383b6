"""Log stream settings: the one place their rules and JSON shapes are written (the API and the
dashboard use them), and the settings page's test line.

A workspace has one default destination (``WorkspaceLogStream``, which can be paused); a
service may override it (``ServiceLogStream``: ``drop``, or ``send`` to a custom destination
with its own token). A destination is an endpoint, ``HOST:PORT``.
"""

import contextlib
import enum
import logging
import re
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from audit.trail import Actor, record
from logstreams.models import ServiceLogStream, StreamSetting, WorkspaceLogStream
from logstreams.syslog import frame, message_prefix
from logstreams.transport import describe_error, open_connection, operator_error
from services.egress import EgressRefused, allowed_addresses
from services.errors import Invalid
from services.models import Service, Workspace

log = logging.getLogger(__name__)

# Endpoints.

_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$")


def parse_endpoint(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6addr]:PORT`` for IPv6) as (host, port); ValueError says what's wrong."""
    value = (value or "").strip()
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError("must be HOST:PORT, e.g. logs.example.com:6514")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host or not all(c in "0123456789abcdefABCDEF:." for c in host):
            raise ValueError("has an invalid IPv6 address")
    elif not _HOST.match(host):
        raise ValueError("has an invalid host name")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("must end with a port between 1 and 65535")
    return host, int(port_text)


def validate_endpoint(value: str) -> str:
    parse_endpoint(value)
    return value.strip()


# The settings page's test line.


def send_test_line(
    endpoint: str, token: str, workspace_id: str, *, timeout: float = 5.0
) -> str | None:
    """Send one line synchronously (the settings page's button); returns an error or None."""
    try:
        host, port = parse_endpoint(endpoint)
    except ValueError as exc:
        return f"The endpoint {exc}."
    prefix = message_prefix(
        hostname="oneoff",
        app_name="oneoff",
        procid="-",
        msgid="test",
        params={"token": token, "workspace": workspace_id},
    )
    now = timezone.now()
    data = frame(prefix, now, 1, None, f"Test line from Oneoff at {now:%Y-%m-%d %H:%M:%S} UTC")
    try:
        with open_connection(host, port, timeout) as sock:
            sock.sendall(data)
            with contextlib.suppress(OSError):
                sock.unwrap()
    except (OSError, ValueError, EgressRefused) as exc:
        log.warning("log stream test line: %s", operator_error(exc, endpoint))
        return describe_error(exc, host)
    return None


# Settings.


class Unset(enum.Enum):
    """The type of ``UNSET``: an argument left out, unlike a None or "" that clears it."""

    UNSET = "unset"


UNSET = Unset.UNSET


class SettingsError(Invalid):
    """Bad log stream settings; ``field`` names the input at fault."""


def _clean_endpoint(value: str | None) -> str:
    try:
        return validate_endpoint(value if isinstance(value, str) else "")
    except ValueError as exc:
        raise SettingsError("endpoint", str(exc)) from exc


def _clean_token(value: str) -> str:
    if len(value) > 1000:
        raise SettingsError("token", "must be at most 1000 characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SettingsError("token", "must not contain control characters")
    return value


def _check_egress(endpoint: str) -> None:
    """A new destination must be one the egress rules allow (checked again on every connect:
    what a name resolves to may change)."""
    host, port = parse_endpoint(endpoint)
    try:
        allowed_addresses(host, port)
    except EgressRefused as exc:
        raise SettingsError("endpoint", exc.message) from exc


def owner_stream(workspace: Workspace) -> WorkspaceLogStream | None:
    """The workspace's default destination, if one is set."""
    stream = WorkspaceLogStream.objects.filter(workspace=workspace).first()
    return stream if stream is not None and stream.endpoint else None


def stream_row(workspace: Workspace) -> WorkspaceLogStream:
    """The workspace's row (with its counters), made on first use."""
    stream, _ = WorkspaceLogStream.objects.get_or_create(workspace=workspace)
    return stream


def set_owner_stream(
    workspace: Workspace,
    *,
    preview: str,
    endpoint: str | Unset | None = UNSET,
    token: str | Unset | None = UNSET,
    enabled: bool | Unset = UNSET,
    actor: Actor | None = None,
) -> WorkspaceLogStream:
    """Set the default destination; an omitted endpoint keeps the current one, and so does an
    omitted token unless the endpoint changes (a token belongs to its destination). Audited
    (with an ``actor``) as ``log_stream.create`` or ``.update``, without the token."""
    stream = stream_row(workspace)
    had_endpoint = bool(stream.endpoint)
    new_endpoint = ""
    if endpoint is not UNSET:
        cleaned = _clean_endpoint(endpoint)
        if cleaned != stream.endpoint:
            new_endpoint = cleaned
            if token is UNSET:
                stream.token = ""
        stream.endpoint = cleaned
    elif not stream.endpoint:
        raise SettingsError("endpoint", "is required (HOST:PORT) when no log stream is set yet")
    if token is not UNSET:
        stream.token = _clean_token(token or "")
    if preview not in StreamSetting.values:
        raise SettingsError("preview", "must be send or drop")
    stream.preview = preview
    if enabled is not UNSET:
        stream.enabled = bool(enabled)
    if new_endpoint:
        _check_egress(new_endpoint)
    with transaction.atomic():
        stream.save()
        record(
            actor,
            workspace,
            "log_stream.update" if had_endpoint else "log_stream.create",
            target_type="owner",
            target_id=workspace.id,
            metadata={"endpoint": stream.endpoint, "enabled": stream.enabled, "preview": preview},
        )
    return stream


def delete_owner_stream(workspace: Workspace, *, actor: Actor | None = None) -> bool:
    """Remove the default destination (its counters stay); False when none was set."""
    with transaction.atomic():
        deleted = bool(
            WorkspaceLogStream.objects.filter(workspace=workspace)
            .exclude(endpoint="")
            .update(endpoint="", token="", enabled=True, preview=StreamSetting.SEND)
        )
        if deleted:
            record(
                actor, workspace, "log_stream.delete", target_type="owner", target_id=workspace.id
            )
    return deleted


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value else None


def owner_stream_dict(stream: WorkspaceLogStream) -> dict:
    """Render's owner log stream shape (the token is never returned) plus Oneoff's fields."""
    data = {
        "ownerId": stream.workspace_id,
        "endpoint": stream.endpoint,
        "preview": stream.preview,
        "enabled": stream.enabled,
        "hasToken": bool(stream.token),
        "droppedLines": stream.dropped_lines,
        "lastDeliveredAt": _iso(stream.last_delivered_at),
        "lastError": stream.last_error or None,
        "lastErrorAt": _iso(stream.last_error_at),
    }
    return {key: value for key, value in data.items() if value is not None}


def resource_stream(service: Service) -> ServiceLogStream | None:
    return ServiceLogStream.objects.filter(service=service).first()


def set_resource_stream(
    service: Service,
    *,
    setting: str,
    endpoint: str | Unset | None = UNSET,
    token: str | Unset | None = UNSET,
    actor: Actor | None = None,
) -> ServiceLogStream:
    """Render's rules: ``send`` needs an endpoint (a custom destination), ``drop`` takes none."""
    if setting not in StreamSetting.values:
        raise SettingsError("setting", "must be send or drop")
    existing = resource_stream(service)
    override = existing or ServiceLogStream(service=service)
    if setting == StreamSetting.DROP:
        if endpoint not in (UNSET, None, ""):
            raise SettingsError("endpoint", "cannot be set when setting is drop")
        override.endpoint, override.token = "", ""
    else:
        if endpoint in (UNSET, None, ""):
            raise SettingsError(
                "endpoint",
                "is required when setting is send (a custom destination); delete the override "
                "to send to the workspace's default",
            )
        cleaned = _clean_endpoint(endpoint)
        if token is not UNSET:
            override.token = _clean_token(token or "")
        elif cleaned != override.endpoint:
            override.token = ""  # a token belongs to its destination
        if cleaned != override.endpoint:
            _check_egress(cleaned)
        override.endpoint = cleaned
    override.setting = setting
    with transaction.atomic():
        override.save()
        record(
            actor,
            service.workspace_id,
            "log_stream.update" if existing else "log_stream.create",
            target_type="service",
            target_id=service.id,
            metadata={"setting": setting, "endpoint": override.endpoint},
        )
    return override


def delete_resource_stream(service: Service, *, actor: Actor | None = None) -> bool:
    with transaction.atomic():
        deleted, _ = ServiceLogStream.objects.filter(service=service).delete()
        if deleted:
            record(
                actor,
                service.workspace_id,
                "log_stream.delete",
                target_type="service",
                target_id=service.id,
            )
    return bool(deleted)


def resource_stream_dict(override: ServiceLogStream) -> dict:
    data: dict[str, str | bool] = {"resourceId": override.service_id, "setting": override.setting}
    if override.setting == StreamSetting.SEND and override.endpoint:
        data["endpoint"] = override.endpoint
        data["hasToken"] = bool(override.token)
    return data

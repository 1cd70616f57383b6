"""Log streams: every job log line to the workspace's syslog destination, over TCP with TLS.

Format: RFC 5424 messages with RFC 5425 octet-counting framing (``<len> <msg>``)::

    <14>1 2026-11-29T12:00:00.123456+00:00 web srv-… job-… job
        [oneoff@32473 token="…" workspace="tea-…" service="srv-…" job="job-…" seq="7"
        stream="stdout"] the line

HOSTNAME is the service's slug, APP-NAME its id, PROCID the job id; the severity is info (6)
for stdout and err (3) for stderr (facility user), the timestamp is the line's own.

Where lines go: a service's override (``drop``, or ``send`` to a custom destination with its own
token) wins over the workspace default; nothing is sent while the workspace's stream is paused.

How forwarding stays out of a job's way: the runner calls ``forward_batch`` (registered in
``jobs.logs.BATCH_LISTENERS``) after each stored batch; it only appends the lines to a bounded
in-memory buffer of the destination and returns. One daemon thread per destination (per
process) sends them, reconnecting with exponential backoff while the destination is down. When
the buffer is full, new lines are dropped and counted; the counts (and the last error and
delivery) are written to the workspace's ``WorkspaceLogStream`` row about once a second, so the
dashboard and the API show them. Certificates are always verified, against the system store
plus the CA file in ``LOG_STREAM_CA_FILE``.
"""

import contextlib
import functools
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import F
from django.utils import timezone

from jobs.models import Job
from logstreams.models import ServiceLogStream, StreamSetting, WorkspaceLogStream
from services.errors import Invalid
from services.models import Service

log = logging.getLogger(__name__)

ENTERPRISE_ID = 32473  # RFC 5612's number reserved for documentation examples
FACILITY_USER = 1
SEVERITY = {1: 6, 2: 3}  # stdout: info, stderr: err
STREAM_NAME = {1: "stdout", 2: "stderr"}
ROUTE_TTL = 5.0  # seconds a process trusts its cached view of a workspace's settings
STATS_INTERVAL = 1.0  # seconds between writes of counters to the database
SEND_BATCH = 5000  # lines taken from the buffer at a time
BACKOFF_MIN = 0.2  # seconds before the first reconnect
IDLE_SECONDS = 600.0  # a destination nothing was sent to for this long is closed and forgotten


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


# RFC 5424 messages.


def _header_field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit`` characters."""
    cleaned = "".join(c for c in str(value) if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def _sd_value(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd_params(params: dict) -> str:
    return "".join(f' {name}="{_sd_value(value)}"' for name, value in params.items() if value)


def message_prefix(*, hostname: str, app_name: str, procid: str, msgid: str, params: dict):
    """The part of a message after the timestamp that is the same for all lines of a job,
    up to the still open structured data element."""
    return (
        f" {_header_field(hostname, 255)} {_header_field(app_name, 48)}"
        f" {_header_field(procid, 128)} {_header_field(msgid, 32)}"
        f" [oneoff@{ENTERPRISE_ID}{_sd_params(params)}"
    )


def frame(prefix: str, timestamp: datetime, stream: int, seq, text: str) -> bytes:
    """One line as an octet-counted RFC 5424 message."""
    pri = FACILITY_USER * 8 + SEVERITY.get(stream, 6)
    stamp = timestamp.astimezone(UTC).isoformat(timespec="microseconds")
    seq_param = f' seq="{seq}"' if seq is not None else ""
    message = (
        f'<{pri}>1 {stamp}{prefix}{seq_param} stream="{STREAM_NAME.get(stream, "stdout")}"] {text}'
    ).encode("utf-8", "replace")
    return b"%d %s" % (len(message), message)


_HEAD = {s: f"<{FACILITY_USER * 8 + sev}>1 " for s, sev in SEVERITY.items()}
_TAIL = {s: f' stream="{name}"] ' for s, name in STREAM_NAME.items()}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_stamp_cache: dict[int, str] = {}


def _stamp(us: int) -> str:
    """RFC 3339 in UTC with microseconds, cached per second (lines come in time order)."""
    seconds, micros = divmod(us, 1_000_000)
    head = _stamp_cache.get(seconds)
    if head is None:
        if len(_stamp_cache) > 1024:
            _stamp_cache.clear()
        head = _stamp_cache[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{head}.{micros:06d}+00:00"


def frames(prefix: str, lines) -> bytes:
    """A batch of one job's lines (``seq``, ``timestamp_us`` or ``timestamp``, ``stream``,
    ``text``) as octet-counted RFC 5424 messages, ready for the socket; as :func:`frame` gives,
    only quicker (this runs for every line that is forwarded)."""
    out = []
    append = out.append
    for line in lines:
        us = getattr(line, "timestamp_us", None)
        if us is None:
            us = (line.timestamp - _EPOCH) // timedelta(microseconds=1)
        stream = line.stream if line.stream in _HEAD else 1
        message = f'{_HEAD[stream]}{_stamp(us)}{prefix} seq="{line.seq}"{_TAIL[stream]}{line.text}'
        if message.isascii():
            append(f"{len(message)} {message}")
        else:
            size = len(message.encode("utf-8", "replace"))
            append(f"{size} {message}")
    return "".join(out).encode("utf-8", "replace")


# TLS.


@functools.cache
def _tls_context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context()  # system store, hostname check, CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise OSError(f"LOG_STREAM_CA_FILE {ca_file!r} cannot be loaded: {exc}") from exc
    return context


def tls_context() -> ssl.SSLContext:
    return _tls_context(settings.LOG_STREAM_CA_FILE or "")


def open_connection(host: str, port: int, timeout: float) -> ssl.SSLSocket:
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return tls_context().wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def describe_error(exc: BaseException, endpoint: str) -> str:
    """A short, user-facing reason (never containing a token)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or "certificate verify failed"
        return f"TLS certificate of {endpoint} was refused: {reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {endpoint} failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"{endpoint} refused the connection"
    if isinstance(exc, socket.gaierror):
        return f"{endpoint}: host not found"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{endpoint} timed out"
    return f"{endpoint}: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)


def send_test_line(endpoint: str, token: str, workspace_id: str, *, timeout: float = 5.0):
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
    except (OSError, ValueError) as exc:
        return describe_error(exc, endpoint)
    return None


# Routing: where a job's lines go.


@dataclass(frozen=True)
class Route:
    endpoint: str
    host: str
    port: int
    token: str
    workspace_id: str
    service_id: str
    service_slug: str

    def prefix_for(self, job_id: str) -> str:
        return message_prefix(
            hostname=self.service_slug,
            app_name=self.service_id,
            procid=job_id,
            msgid="job",
            params={
                "token": self.token,
                "workspace": self.workspace_id,
                "service": self.service_id,
                "job": job_id,
            },
        )


def resolve_route(workspace_id: str, service_id: str) -> Route | None:
    """The destination of a service's job logs right now, or None when they go nowhere."""
    default = WorkspaceLogStream.objects.filter(workspace_id=workspace_id).first()
    if default is not None and not default.enabled:
        return None  # paused: nothing of the workspace is forwarded
    override = ServiceLogStream.objects.filter(service_id=service_id).first()
    if override is not None and override.setting == StreamSetting.DROP:
        return None
    if override is not None and override.endpoint:
        endpoint, token = override.endpoint, override.token
    elif default is not None and default.endpoint:
        endpoint, token = default.endpoint, default.token
    else:
        return None
    try:
        host, port = parse_endpoint(endpoint)
    except ValueError:
        log.warning("log stream endpoint of %s is invalid; not forwarding", service_id)
        return None
    service = Service.objects.filter(id=service_id).only("id", "name").first()
    if service is None:
        return None
    return Route(endpoint, host, port, token, workspace_id, service_id, service.slug)


# The buffer and the sender.


class Destination:
    """One ``HOST:PORT``: a bounded buffer and a sender thread with its own connection.

    The buffer holds the runner's batches as they came (one append per batch, so queueing
    costs the ingest thread little per line); when a batch does not wholly fit, its first
    lines are kept and the rest dropped, so what is delivered is always the oldest. The sender
    reads batches without removing them and removes them only once written to the socket, so
    a write that fails is sent again after reconnecting and the bound covers every line not
    yet delivered.
    """

    def __init__(self, forwarder: "Forwarder", host: str, port: int):
        self.forwarder = forwarder
        self.host, self.port = host, port
        self.endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.max_lines = settings.LOG_STREAM_BUFFER_LINES
        self.max_bytes = settings.LOG_STREAM_BUFFER_BYTES
        self.timeout = settings.LOG_STREAM_TIMEOUT
        self.retry_max = settings.LOG_STREAM_RETRY_MAX
        # (workspace id, prefix, lines, bytes) per batch of one job.
        self._chunks: deque = deque()
        self._lines = 0
        self._bytes = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._sock: ssl.SSLSocket | None = None
        self.delivered = 0
        self.dropped = 0
        self.connected = False
        self.last_error = ""
        self.last_offer = time.monotonic()
        self._retired = False
        self._thread = threading.Thread(
            target=self._run, name=f"logstream-{self.endpoint}", daemon=True
        )
        self._thread.start()

    # Called by the ingest path: never blocks on the network, costs little per line.
    def offer(self, workspace_id: str, prefix: str, lines) -> int:
        """Buffer a batch of lines; returns how many did not fit (dropped, and counted)."""
        lines = list(lines)
        overhead = len(prefix) + 64
        size = sum(len(line.text) for line in lines) + overhead * len(lines)
        with self._cond:
            retired = self._retired
            if not retired:
                self.last_offer = time.monotonic()
                dropped, size = self._append(workspace_id, prefix, lines, size, overhead)
        if retired:  # forgotten a moment ago: go through a fresh destination
            fresh = self.forwarder.destination(self.host, self.port)
            return fresh.offer(workspace_id, prefix, lines)
        if dropped:
            self.dropped += dropped
            self.forwarder.stats.dropped(workspace_id, dropped)
        self.forwarder.stats.routed(workspace_id, self.endpoint)
        return dropped

    def _append(self, workspace_id, prefix, lines, size, overhead) -> tuple[int, int]:
        """Under the lock: keep what fits (the oldest lines first); returns (dropped, bytes)."""
        room = self.max_lines - self._lines
        dropped = 0
        if len(lines) > room or self._bytes + size > self.max_bytes:
            kept, size, budget = [], 0, self.max_bytes - self._bytes
            for line in lines[: max(0, room)]:
                line_size = len(line.text) + overhead
                if size + line_size > budget:
                    break
                kept.append(line)
                size += line_size
            dropped = len(lines) - len(kept)
            lines = kept
        if lines:
            self._chunks.append((workspace_id, prefix, lines, size))
            self._lines += len(lines)
            self._bytes += size
            self._cond.notify()
        return dropped, size

    def pending(self) -> int:
        with self._cond:
            return self._lines

    def stop(self, timeout: float = 2.0) -> None:
        """Try to deliver what is buffered within ``timeout``, then stop the thread."""
        deadline = time.monotonic() + timeout
        while self.pending() and self.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(max(0.1, deadline - time.monotonic()))
        self._close()

    def _peek(self) -> list:
        """The oldest batches, about SEND_BATCH lines, left in the buffer until sent."""
        with self._cond:
            if not self._chunks:
                self._cond.wait(timeout=0.5)
            taken, count = [], 0
            for chunk in self._chunks:
                if taken and count + len(chunk[2]) > SEND_BATCH:
                    break
                taken.append(chunk)
                count += len(chunk[2])
            return taken

    def _commit(self, chunks: list) -> None:
        with self._cond:
            for _ in chunks:
                _, _, lines, size = self._chunks.popleft()
                self._lines -= len(lines)
                self._bytes -= size

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            chunks = self._peek()
            self.forwarder.stats.maybe_flush()
            if time.monotonic() - self.last_offer > IDLE_SECONDS and self.forwarder.forget(self):
                self._retire()
                return
            if not chunks or self._stop.is_set():
                continue
            try:
                if self._sock is None or self._peer_closed():
                    self._connect()
                for _, prefix, lines, _ in chunks:
                    self._sock.sendall(frames(prefix, lines))
            except (OSError, ValueError) as exc:
                self._close()
                self._failed(exc)
                backoff = min(max(backoff * 2, BACKOFF_MIN), self.retry_max)
                self._stop.wait(backoff * random.uniform(0.8, 1.0))
                continue
            backoff = 0.0
            self._commit(chunks)
            self.delivered += sum(len(lines) for _, _, lines, _ in chunks)
            self.forwarder.stats.delivered(self.endpoint)
        self.forwarder.stats.maybe_flush(force=True)

    def _retire(self) -> None:
        """Nothing came for a long while (the settings moved elsewhere, or no job printed):
        close the connection and end, counting as dropped what could not be sent."""
        with self._cond:
            chunks, self._chunks = list(self._chunks), deque()
            self._lines = self._bytes = 0
        for workspace_id, _, lines, _ in chunks:
            self.dropped += len(lines)
            self.forwarder.stats.dropped(workspace_id, len(lines))
        self._close()
        self.forwarder.stats.maybe_flush(force=True)

    def _connect(self) -> None:
        self._close()
        self._sock = open_connection(self.host, self.port, self.timeout)
        self.connected = True

    def _failed(self, exc: BaseException) -> None:
        message = describe_error(exc, self.endpoint)
        if message != self.last_error:
            log.warning("log stream: %s", message)
        self.last_error = message
        self.forwarder.stats.error(self.endpoint, message)

    def _peer_closed(self) -> bool:
        """Syslog receivers never write, so a readable socket means the peer closed it (or
        sent TLS housekeeping such as session tickets, which reading consumes)."""
        sock = self._sock
        try:
            sock.setblocking(False)
            try:
                return sock.recv(1) == b""
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return False
            finally:
                sock.settimeout(self.timeout)
        except OSError:
            return True

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        self.connected = False
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


class Stats:
    """Counters of one process, written to the workspaces' stream rows about once a second."""

    def __init__(self):
        self._lock = threading.Lock()
        self._drops: Counter = Counter()
        self._errors: dict[str, tuple[str, datetime]] = {}
        self._deliveries: dict[str, datetime] = {}
        self._workspaces: dict[str, set[str]] = {}  # endpoint -> workspaces sending there
        self._next_flush = 0.0

    def dropped(self, workspace_id: str, count: int) -> None:
        with self._lock:
            self._drops[workspace_id] += count

    def routed(self, workspace_id: str, endpoint: str) -> None:
        with self._lock:
            self._workspaces.setdefault(endpoint, set()).add(workspace_id)

    def error(self, endpoint: str, message: str) -> None:
        with self._lock:
            self._errors[endpoint] = (message, timezone.now())

    def delivered(self, endpoint: str) -> None:
        with self._lock:
            self._deliveries[endpoint] = timezone.now()

    def maybe_flush(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now < self._next_flush:
                return
            self._next_flush = now + STATS_INTERVAL
            drops, self._drops = self._drops, Counter()
            errors, self._errors = self._errors, {}
            deliveries, self._deliveries = self._deliveries, {}
            workspaces = {endpoint: set(ids) for endpoint, ids in self._workspaces.items()}
        if not (drops or errors or deliveries):
            return
        try:
            self._write(drops, errors, deliveries, workspaces)
        except DatabaseError:
            log.exception("log stream: could not record counters")
            with self._lock:
                self._drops.update(drops)
        finally:
            # This runs in sender threads: never keep a connection open in them.
            if threading.current_thread() is not threading.main_thread():
                connection.close()

    @staticmethod
    def _write(drops, errors, deliveries, workspaces) -> None:
        close_old_connections()
        for workspace_id, count in drops.items():
            rows = WorkspaceLogStream.objects.filter(workspace_id=workspace_id)
            if not rows.update(dropped_lines=F("dropped_lines") + count):
                WorkspaceLogStream.objects.get_or_create(workspace_id=workspace_id)
                rows.update(dropped_lines=F("dropped_lines") + count)
        # Errors and deliveries show on the workspace whose default destination it is.
        for endpoint, (message, at) in errors.items():
            WorkspaceLogStream.objects.filter(
                workspace_id__in=workspaces.get(endpoint, ()), endpoint=endpoint
            ).update(last_error=message[:500], last_error_at=at)
        for endpoint, at in deliveries.items():
            WorkspaceLogStream.objects.filter(
                workspace_id__in=workspaces.get(endpoint, ()), endpoint=endpoint
            ).update(last_delivered_at=at)


class Forwarder:
    def __init__(self):
        self._lock = threading.Lock()
        self._destinations: dict[tuple[str, int], Destination] = {}
        self._routes: dict[tuple[str, str], tuple[float, Route | None]] = {}
        self._owners: dict[str, tuple[str, str]] = {}  # job id -> (workspace id, service id)
        self.stats = Stats()

    def route_for(self, job_id: str) -> Route | None:
        key = self._owners.get(job_id)
        if key is None:
            key = Job.objects.filter(pk=job_id).values_list("workspace_id", "service_id").first()
            if key is None:
                return None
            if len(self._owners) >= 10000:
                self._owners.clear()
            self._owners[job_id] = key
        cached = self._routes.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        route = resolve_route(*key)
        self._routes[key] = (time.monotonic() + ROUTE_TTL, route)
        return route

    def destination(self, host: str, port: int) -> Destination:
        key = (host, port)
        destination = self._destinations.get(key)
        if destination is None:
            with self._lock:
                destination = self._destinations.get(key)
                if destination is None:
                    destination = self._destinations[key] = Destination(self, host, port)
        return destination

    def forward(self, job_id: str, lines) -> int:
        """Queue a job's stored lines for its destination; returns how many were dropped."""
        if not lines:
            return 0
        route = self.route_for(job_id)
        if route is None:
            return 0
        destination = self.destination(route.host, route.port)
        return destination.offer(route.workspace_id, route.prefix_for(job_id), lines)

    def forget(self, destination: Destination) -> bool:
        """Drop an idle destination from the registry (a later line makes a new one). Under
        the registry's lock, so a line queued meanwhile keeps it (then this says False)."""
        with self._lock, destination._cond:
            key = (destination.host, destination.port)
            if self._destinations.get(key) is not destination:
                return False
            if time.monotonic() - destination.last_offer <= IDLE_SECONDS:
                return False
            destination._retired = True
            del self._destinations[key]
            return True

    def invalidate(self) -> None:
        self._routes.clear()

    def destinations(self) -> list[Destination]:
        return list(self._destinations.values())

    def shutdown(self, timeout: float = 2.0) -> None:
        with self._lock:
            destinations, self._destinations = list(self._destinations.values()), {}
        for destination in destinations:
            destination.stop(timeout)
        self.stats.maybe_flush(force=True)
        self._routes.clear()


forwarder = Forwarder()


def _reset_after_fork() -> None:
    # A forked child (a Celery prefork worker) inherits the registry but not the threads.
    global forwarder
    forwarder = Forwarder()


os.register_at_fork(after_in_child=_reset_after_fork)


def forward_batch(job_id: str, lines) -> None:
    """The runner's batch listener (``jobs.logs.BATCH_LISTENERS``): queue the stored lines (with
    ``seq``, ``timestamp``, ``stream``, ``text``); never raise, never wait on the network."""
    try:
        forwarder.forward(job_id, lines)
    except Exception:
        log.exception("log stream: could not queue lines of %s", job_id)


def invalidate_routes(**kwargs) -> None:
    forwarder.invalidate()


def flush_at_exit() -> None:
    forwarder.shutdown(timeout=2.0)


# Settings: the one place their rules and JSON shapes are written (the API and the dashboard).

UNSET = object()


class SettingsError(Invalid):
    """Bad log stream settings; ``field`` names the input at fault."""


def _clean_endpoint(value) -> str:
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


def owner_stream(workspace) -> WorkspaceLogStream | None:
    """The workspace's default destination, if one is set."""
    stream = WorkspaceLogStream.objects.filter(workspace=workspace).first()
    return stream if stream is not None and stream.endpoint else None


def stream_row(workspace) -> WorkspaceLogStream:
    """The workspace's row (with its counters), made on first use."""
    stream, _ = WorkspaceLogStream.objects.get_or_create(workspace=workspace)
    return stream


def set_owner_stream(workspace, *, preview, endpoint=UNSET, token=UNSET, enabled=UNSET):
    """Set the default destination; an omitted endpoint or token keeps the current one."""
    stream = stream_row(workspace)
    if endpoint is not UNSET:
        stream.endpoint = _clean_endpoint(endpoint)
    elif not stream.endpoint:
        raise SettingsError("endpoint", "is required (HOST:PORT) when no log stream is set yet")
    if token is not UNSET:
        stream.token = _clean_token(token or "")
    if preview not in StreamSetting.values:
        raise SettingsError("preview", "must be send or drop")
    stream.preview = preview
    if enabled is not UNSET:
        stream.enabled = bool(enabled)
    stream.save()
    return stream


def delete_owner_stream(workspace) -> bool:
    """Remove the default destination (its counters stay); False when none was set."""
    return bool(
        WorkspaceLogStream.objects.filter(workspace=workspace)
        .exclude(endpoint="")
        .update(endpoint="", token="", enabled=True, preview=StreamSetting.SEND)
    )


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


def resource_stream(service) -> ServiceLogStream | None:
    return ServiceLogStream.objects.filter(service=service).first()


def set_resource_stream(service, *, setting, endpoint=UNSET, token=UNSET) -> ServiceLogStream:
    """Render's rules: ``send`` needs an endpoint (a custom destination), ``drop`` takes none."""
    if setting not in StreamSetting.values:
        raise SettingsError("setting", "must be send or drop")
    override = resource_stream(service) or ServiceLogStream(service=service)
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
        override.endpoint = cleaned
    override.setting = setting
    override.save()
    return override


def delete_resource_stream(service) -> bool:
    deleted, _ = ServiceLogStream.objects.filter(service=service).delete()
    return bool(deleted)


def resource_stream_dict(override: ServiceLogStream) -> dict:
    data = {"resourceId": override.service_id, "setting": override.setting}
    if override.setting == StreamSetting.SEND and override.endpoint:
        data["endpoint"] = override.endpoint
        data["hasToken"] = bool(override.token)
    return data

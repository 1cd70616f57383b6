"""Sending to one syslog destination over TCP with TLS.

A ``Destination`` is one ``HOST:PORT``: a bounded in-memory buffer and one daemon thread (per
process) that sends it, reconnecting with exponential backoff while the destination is down.
When the buffer is full, new lines are dropped and counted; ``Stats`` writes the counts (and the
last error and delivery) to the workspace's ``WorkspaceLogStream`` row about once a second, so
the dashboard and the API show them. Certificates are always verified, against the system store
plus the CA file in ``LOG_STREAM_CA_FILE``.

Every connection goes through the egress rules (``services.egress``): the destination's name is
resolved and checked on each connect, and the socket opened to a checked address (the TLS
server name stays the destination's name). What a tenant sees of a failure is the rules' one
wording, whatever happened (a refused, silent or TLS-failing port, a forbidden address): the
real reason goes to the server log, for the operator.
"""

import contextlib
import functools
import logging
import random
import socket
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import F
from django.utils import timezone

from logstreams.models import WorkspaceLogStream
from logstreams.syslog import LogLine, frames
from services.egress import EgressRefused, allowed_addresses

if TYPE_CHECKING:
    from logstreams.forward import Forwarder

log = logging.getLogger(__name__)

STATS_INTERVAL = 1.0  # seconds between writes of counters to the database
SEND_BATCH = 5000  # lines taken from the buffer at a time
BACKOFF_MIN = 0.2  # seconds before the first reconnect
IDLE_SECONDS = 600.0  # a destination nothing was sent to for this long is closed and forgotten


# TLS.


class CaFileError(OSError):
    """``LOG_STREAM_CA_FILE`` cannot be loaded: the operator's to fix, and said as it is."""


@functools.cache
def _tls_context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context()  # system store, hostname check, CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise CaFileError(f"LOG_STREAM_CA_FILE {ca_file!r} cannot be loaded: {exc}") from exc
    return context


def tls_context() -> ssl.SSLContext:
    return _tls_context(settings.LOG_STREAM_CA_FILE or "")


def open_connection(host: str, port: int, timeout: float) -> ssl.SSLSocket:
    """A TLS connection to ``host:port`` through the egress rules: to one of the addresses they
    allow (``EgressRefused`` when none), verified for ``host``."""
    context = tls_context()
    failure: OSError | None = None
    for address in allowed_addresses(host, port):
        try:
            raw = socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            failure = exc
            continue
        try:
            return context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
    assert failure is not None  # allowed_addresses returns at least one address
    raise failure


def describe_error(exc: BaseException, host: str) -> str:
    """What a tenant is told: the egress rules' one wording for every failure to reach
    ``host`` (so the errors are no port scanner); only an operator's setting is named."""
    if isinstance(exc, CaFileError):
        return str(exc)
    return EgressRefused(host).message


def operator_error(exc: BaseException, endpoint: str) -> str:
    """The real reason, for the server log only."""
    if isinstance(exc, EgressRefused):
        return f"{endpoint}: refused by the egress rules (see the services.egress log line)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or "certificate verify failed"
        return f"TLS certificate of {endpoint} was refused: {reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {endpoint} failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"{endpoint} refused the connection"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{endpoint} timed out"
    return f"{endpoint}: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)


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
        self.last_error = ""  # as the workspace sees it
        self._last_real_error = ""  # as the server log says it
        self.last_offer = time.monotonic()
        self._retired = False
        self._thread = threading.Thread(
            target=self._run, name=f"logstream-{self.endpoint}", daemon=True
        )
        self._thread.start()

    # Called by the ingest path: never blocks on the network, costs little per line.
    def offer(self, workspace_id: str, prefix: str, lines: Iterable[LogLine]) -> int:
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

    def _append(
        self, workspace_id: str, prefix: str, lines: list[LogLine], size: int, overhead: int
    ) -> tuple[int, int]:
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

    def idle(self) -> bool:
        """Nothing was offered for ``IDLE_SECONDS``: the destination may be forgotten."""
        return time.monotonic() - self.last_offer > IDLE_SECONDS

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
            taken: list = []
            count = 0
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
            if self.idle() and self.forwarder.forget(self):
                self._retire()
                return
            if not chunks or self._stop.is_set():
                continue
            try:
                if self._sock is None or self._peer_closed():
                    self._connect()
                assert self._sock is not None  # _connect opened it, or raised
                for _, prefix, lines, _ in chunks:
                    self._sock.sendall(frames(prefix, lines))
            except (OSError, ValueError, EgressRefused) as exc:
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
        real = operator_error(exc, self.endpoint)
        if real != self._last_real_error:
            log.warning("log stream: %s", real)
            self._last_real_error = real
        message = describe_error(exc, self.host)
        self.last_error = message
        self.forwarder.stats.error(self.endpoint, message)

    def _peer_closed(self) -> bool:
        """Syslog receivers never write, so a readable socket means the peer closed it (or
        sent TLS housekeeping such as session tickets, which reading consumes)."""
        sock = self._sock
        assert sock is not None  # asked only of an open connection
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

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drops: Counter[str] = Counter()
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
    def _write(
        drops: Counter[str],
        errors: dict[str, tuple[str, datetime]],
        deliveries: dict[str, datetime],
        workspaces: dict[str, set[str]],
    ) -> None:
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

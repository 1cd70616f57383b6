"""Sending to one syslog destination over TCP with TLS.

A ``Destination`` is one ``HOST:PORT``: one daemon thread (in the process holding its lease)
that reads the stored lines of its jobs after their cursors and sends them, reconnecting with
exponential backoff while the destination is down; nothing is held in memory, so nothing is
dropped however long it is down, until log retention purges lines not yet sent (counted).
``Stats`` writes the counts (and the last error and delivery) to the workspace's
``WorkspaceLogStream`` row about once a second, so the dashboard and the API show them.
Certificates are always verified, against the system store plus the CA file in
``LOG_STREAM_CA_FILE``.

Every connection goes through the egress rules (``services.egress``): the destination's name is
resolved and checked on each connect, and the socket opened to a checked address (the TLS
server name stays the destination's name). What a tenant sees of a failure is the rules' one
wording, whatever happened (a refused, silent or TLS-failing port, a forbidden address): the
real reason goes to the server log, for the operator.
"""

import contextlib
import logging
import random
import socket
import ssl
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import BigIntegerField, F, Func, Q, QuerySet
from django.utils import timezone

from jobs.models import FINISHED, Job, JobLogLine
from logstreams.models import LogCursor, LogDestination, WorkspaceLogStream
from logstreams.syslog import frames
from services import egress
from services.egress import CaFileError, EgressRefused, allowed_addresses
from services.prepared import Prepared

if TYPE_CHECKING:
    from logstreams.forward import Forwarder, Route

log = logging.getLogger(__name__)

STATS_INTERVAL = 1.0  # seconds between writes of counters to the database
SEND_BATCH = 5000  # lines of one job read and sent at a time
BACKOFF_MIN = 0.2  # seconds before the first reconnect
IDLE_SECONDS = 600.0  # a destination nothing was sent to for this long is closed and forgotten
POLL_SECONDS = 1.0  # a sender with nothing to send looks again this often (or when woken)
LEASE_SECONDS = 10.0  # a destination's lease; a dead holder's lapses after this
LEASE = timedelta(seconds=LEASE_SECONDS)


class Line(NamedTuple):
    """A stored line as read back for sending (``syslog.LogLine``)."""

    seq: int
    timestamp: datetime
    stream: int
    text: str


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StampedLine(NamedTuple):
    """A stored line read back with its time in microseconds since the epoch, as PostgreSQL
    gives it (``syslog.LogLine``): no datetime made a line."""

    seq: int
    timestamp_us: int
    stream: int
    text: str

    @property
    def timestamp(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.timestamp_us)


class EpochMicros(Func):
    """A ``timestamptz`` as whole microseconds since the epoch, exact on any PostgreSQL (the
    whole seconds, then the microseconds within the second)."""

    template = (
        "(EXTRACT(EPOCH FROM date_trunc('second', %(expressions)s))::bigint * 1000000"
        " + mod(EXTRACT(MICROSECONDS FROM %(expressions)s)::bigint, 1000000))"
    )
    output_field = BigIntegerField()


def _unsent(shape: tuple, *, job_id: str, start: int, end: int) -> QuerySet:
    return (
        JobLogLine.objects.filter(job_id=job_id, seq__gte=start, seq__lt=end)
        .order_by("seq")
        .annotate(timestamp_us=EpochMicros("timestamp"))
        .values_list("seq", "timestamp_us", "stream", "text")[:SEND_BATCH]
    )


# A batch of a job's lines to send, compiled once (services.prepared): the forwarder reads every
# line it sends, and the ORM's compile, iterators and a datetime a line were half its work.
_UNSENT = Prepared(_unsent)


def lines_to_send(job_id: str, start: int, end: int) -> list[StampedLine] | list[Line]:
    """Up to ``SEND_BATCH`` stored lines of ``job_id`` from seq ``start``, before ``end``."""
    if connection.vendor == "postgresql":
        return list(map(StampedLine._make, _UNSENT.rows(job_id=job_id, start=start, end=end)))
    return [
        Line(*row)
        for row in JobLogLine.objects.filter(job_id=job_id, seq__gte=start, seq__lt=end)
        .order_by("seq")
        .values_list("seq", "timestamp", "stream", "text")[:SEND_BATCH]
    ]


# TLS.


def tls_context() -> ssl.SSLContext:
    return egress.tls_context(settings.LOG_STREAM_CA_FILE or "", "LOG_STREAM_CA_FILE")


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


# The sender.


class Destination:
    """One ``HOST:PORT``: a sender thread with its own connection, forwarding the stored lines of
    the jobs the forwarder assigns to it, each from its ``LogCursor``.

    It sends only while its process holds the destination's lease (``LogDestination``), so one
    process at a time sends to it. A pass takes up to ``SEND_BATCH`` lines of each assigned job
    after its cursor (keyset on the log table's key, (job, seq)), sends them, and only then
    moves the cursor; a send that fails is retried from the same cursor after reconnecting
    with backoff. Lines the retention purge deleted before they were sent (the destination was
    down longer than the retention period) are counted as dropped.
    """

    def __init__(self, forwarder: "Forwarder", host: str, port: int):
        self.forwarder = forwarder
        self.host, self.port = host, port
        self.endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.timeout = settings.LOG_STREAM_TIMEOUT
        self.retry_max = settings.LOG_STREAM_RETRY_MAX
        self._jobs: dict[str, Route] = {}  # assigned by the forwarder's scan
        self._cond = threading.Condition()
        self._woken = False
        self._stop = threading.Event()
        self._sock: ssl.SSLSocket | None = None
        self._lease_until = 0.0  # monotonic; 0: not held
        self.delivered = 0
        self.dropped = 0
        self.connected = False
        self.last_error = ""  # as the workspace sees it
        self._last_real_error = ""  # as the server log says it
        self.last_assigned = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name=f"logstream-{self.endpoint}", daemon=True
        )
        self._thread.start()

    # Called by the forwarder's scan thread.
    def assign(self, jobs: dict[str, "Route"]) -> None:
        """The jobs with lines to send here now (job id -> route; replaces the last scan's,
        so a process that does not hold the lease keeps no list that only grows); wakes the
        sender."""
        for route in jobs.values():
            self.forwarder.stats.routed(route.workspace_id, self.endpoint)
        with self._cond:
            self._jobs = dict(jobs)
            if jobs:
                self.last_assigned = time.monotonic()
            self._woken = True
            self._cond.notify()

    def idle(self) -> bool:
        """No job was assigned for ``IDLE_SECONDS``: the destination may be forgotten."""
        with self._cond:
            return not self._jobs and time.monotonic() - self.last_assigned > IDLE_SECONDS

    def pending_jobs(self) -> int:
        with self._cond:
            return len(self._jobs)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)  # the thread closes its connection as it ends

    def _wait(self, seconds: float) -> None:
        with self._cond:
            if not self._woken and not self._stop.is_set():
                self._cond.wait(seconds)
            self._woken = False

    def _run(self) -> None:
        backoff = 0.0
        try:
            while not self._stop.is_set():
                self.forwarder.stats.maybe_flush()
                if self.idle() and self.forwarder.forget(self):
                    break
                with self._cond:
                    jobs = dict(self._jobs)
                if not jobs:
                    self._wait(POLL_SECONDS)
                    continue
                try:
                    if not self._hold_lease():
                        self._wait(LEASE_SECONDS / 3)
                        continue
                    sent = self._pass(jobs)
                except (OSError, ValueError, EgressRefused) as exc:
                    self._close()
                    self._failed(exc)
                    backoff = min(max(backoff * 2, BACKOFF_MIN), self.retry_max)
                    self._stop.wait(backoff * random.uniform(0.8, 1.0))
                    continue
                except DatabaseError:
                    log.warning("log stream %s: database unavailable; retrying", self.endpoint)
                    close_old_connections()
                    self._stop.wait(1.0)
                    continue
                backoff = 0.0
                if not sent:
                    self._wait(POLL_SECONDS)
        finally:
            self._release_lease()
            self._close()
            self.forwarder.stats.maybe_flush(force=True)
            connection.close()  # a thread of its own: never leave its connection open

    # The lease.

    def _hold_lease(self) -> bool:
        """Take or renew this destination's lease (renewed when a third of it is left)."""
        now = time.monotonic()
        if self._lease_until - now > LEASE_SECONDS * 2 / 3:
            return True
        at = timezone.now()
        LogDestination.objects.get_or_create(endpoint=self.endpoint)
        held = (
            LogDestination.objects.filter(endpoint=self.endpoint)
            .filter(
                Q(holder=self.forwarder.identity)
                | Q(lease_until__isnull=True)
                | Q(lease_until__lt=at)
            )
            .update(holder=self.forwarder.identity, lease_until=at + LEASE)
        )
        self._lease_until = now + LEASE_SECONDS if held else 0.0
        return bool(held)

    def _release_lease(self) -> None:
        if not self._lease_until:
            return
        self._lease_until = 0.0
        with contextlib.suppress(DatabaseError):  # else it lapses by itself
            LogDestination.objects.filter(
                endpoint=self.endpoint, holder=self.forwarder.identity
            ).update(lease_until=None)

    # Forwarding.

    def _pass(self, jobs: dict[str, "Route"]) -> int:
        """Up to ``SEND_BATCH`` lines of each job (the oldest job first); returns how many
        were sent. A job all sent that has ended is marked done and unassigned."""
        sent = 0
        states = {
            row[0]: row[1:]
            for row in Job.objects.filter(pk__in=list(jobs)).values_list(
                "id", "log_line_count", "status"
            )
        }
        cursors = dict(
            LogCursor.objects.filter(job_id__in=list(jobs)).values_list("job_id", "next_seq")
        )
        for job_id, route in jobs.items():
            if not self._hold_lease():  # lost it during a long pass: another process sends
                break
            if job_id not in states:  # deleted
                self._unassign(job_id)
                continue
            count, status = states[job_id]
            start = cursors.get(job_id, 0)
            if start >= count:
                if status in FINISHED:
                    LogCursor.objects.update_or_create(job_id=job_id, defaults={"done": True})
                    self._unassign(job_id)
                continue
            sent += self._send_job(job_id, route, start, count)
        return sent

    def _send_job(self, job_id: str, route: "Route", start: int, count: int) -> int:
        lines = lines_to_send(job_id, start, count)
        # Lines stored (``count`` was read first, and lines commit with it) but gone: purged
        # by log retention before they could be sent.
        first = lines[0][0] if lines else count
        purged = first - start
        if lines:
            if self._sock is None or self._peer_closed():
                self._connect()
            assert self._sock is not None  # _connect opened it, or raised
            self._sock.sendall(frames(route.prefix_for(job_id), lines))
            # Read what the receiver sent (TLS session tickets): unread input would make a
            # close, or this process's death, reset the connection and discard lines already
            # handed to the kernel. And a receiver that closed meanwhile may not have them all.
            if self._peer_closed():
                raise ConnectionResetError("the receiver closed the connection")
        end = lines[-1][0] + 1 if lines else count
        moved = LogCursor.objects.filter(job_id=job_id, next_seq=start).update(next_seq=end)
        if not moved:
            _, created = LogCursor.objects.get_or_create(job_id=job_id, defaults={"next_seq": end})
            if not created:  # another holder moved it meanwhile (a lapsed lease): theirs wins
                return len(lines)
        if purged:
            self.dropped += purged
            self.forwarder.stats.dropped(route.workspace_id, purged)
        if lines:
            self.delivered += len(lines)
            self.forwarder.stats.delivered(self.endpoint)
        return len(lines)

    def _unassign(self, job_id: str) -> None:
        with self._cond:
            self._jobs.pop(job_id, None)
        self.forwarder.finished(job_id)

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

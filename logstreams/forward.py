"""Log streams: every job log line to the workspace's syslog destination.

Where lines go: a service's override (``drop``, or ``send`` to a custom destination with its own
token) wins over the workspace default; nothing is sent while the workspace's stream is paused
(lines stored meanwhile are skipped), nor for jobs created before the stream was set up.

How no line is lost: forwarding reads the stored log, never a copy of it. Each job has a
``LogCursor`` (the first line not yet sent); each destination's sender (``transport``) sends the
lines after it and then moves it, so a restarted worker carries on where the last one stopped
(at least once). The ``Forwarder`` (one per worker process serving the jobs queue, started by
``logstreams.apps``) scans for jobs with lines to send about once a second, or at once when
``jobs.logs.store.lines_stored`` says this process stored some, and assigns them to their
destination's sender; a destination's lease (``LogDestination``) lets one process at a time
send to it. The only loss is a destination down longer than the retention period: lines
purged before they were sent are counted in ``WorkspaceLogStream.dropped_lines``.
"""

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.models import FINISHED, Job
from logstreams.models import (
    LogCursor,
    ServiceLogStream,
    StreamSetting,
    WorkspaceLogStream,
)
from logstreams.streams import parse_endpoint
from logstreams.syslog import message_prefix
from logstreams.transport import Destination, Stats
from services.models import Service, Workspace

log = logging.getLogger(__name__)

ROUTE_TTL = 5.0  # seconds a process trusts its cached view of a workspace's settings
SCAN_SECONDS = 1.0  # how often the forwarder looks for lines stored by other processes
SCAN_MIN_GAP = 0.05  # at most this often when woken by lines stored here


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
    since: datetime  # jobs created before the stream was set up are not forwarded

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
        endpoint, token, since = override.endpoint, override.token, override.created_at
    elif default is not None and default.endpoint:
        endpoint, token, since = default.endpoint, default.token, default.created_at
    else:
        return None
    try:
        host, port = parse_endpoint(endpoint)
    except ValueError:
        log.warning("log stream endpoint of %s is invalid; not forwarding", service_id)
        return None
    # A deleted service's jobs still forward their last lines (they are canceled as it goes).
    service = Service.all_objects.filter(id=service_id).only("id", "name").first()
    if service is None:
        return None
    return Route(endpoint, host, port, token, workspace_id, service_id, service.slug, since)


def streaming_workspaces() -> dict[str, datetime]:
    """Workspaces whose jobs' lines may go somewhere (or are skipped while paused), each with
    the earliest time a stream of it was set up (its jobs created before are never forwarded)."""
    since: dict[str, datetime] = {}
    defaults = WorkspaceLogStream.objects.exclude(endpoint="").values_list(
        "workspace_id", "created_at"
    )
    overrides = ServiceLogStream.objects.filter(setting=StreamSetting.SEND).exclude(endpoint="")
    for workspace_id, created_at in [
        *defaults,
        *overrides.values_list("service__workspace_id", "created_at"),
    ]:
        since[workspace_id] = min(since.get(workspace_id, created_at), created_at)
    return since


class Forwarder:
    """One per worker process: the scan thread, the destinations' senders, and where each
    job's lines go (cached for ``ROUTE_TTL`` seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._destinations: dict[tuple[str, int], Destination] = {}
        self._assigned: dict[str, Destination] = {}  # job id -> the destination sending it
        self._routes: dict[tuple[str, str], tuple[float, Route | None]] = {}
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = Stats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # The scan thread.

    def start(self) -> None:
        """Start forwarding from this process (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="logstream-scan", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Lines were stored (a hint: the scan finds them by itself within ``SCAN_SECONDS``)."""
        self._wake.set()

    def _run(self) -> None:
        outage = False
        try:
            while not self._stop.is_set():
                self._wake.wait(SCAN_SECONDS)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    self.scan()
                    if outage:
                        log.info("log stream: database back; forwarding resumes")
                    outage = False
                except DatabaseError as exc:
                    if not outage:
                        log.warning("log stream: database unavailable (%s); retrying", exc)
                    outage = True
                    close_old_connections()
                    self._stop.wait(1.0)
                except Exception:
                    log.exception("log stream: scan failed")
                    self._stop.wait(1.0)
                self.stats.maybe_flush()
                self._stop.wait(SCAN_MIN_GAP)
        finally:
            connection.close()

    def scan(self) -> None:
        """Assign every job with lines not yet sent to its destination's sender; skip (move
        the cursor past) lines that go nowhere; mark ended jobs all sent as done."""
        close_old_connections()
        since = streaming_workspaces()
        if not since:
            for destination in self.destinations():
                destination.assign({})
            return
        now = timezone.now()
        days = max(
            Workspace.objects.filter(id__in=since).values_list("log_retention_days", flat=True)
        )
        # Older jobs' lines have all been purged (a job runs for hours at most).
        oldest = max(min(since.values()), now - timedelta(days=days + 1))
        cursors = LogCursor.objects.filter(job_id=OuterRef("pk"))
        rows = (
            Job.objects.filter(workspace_id__in=since, created_at__gte=oldest)
            .filter(~Exists(cursors.filter(done=True)))
            .annotate(next_seq=Coalesce(Subquery(cursors.values("next_seq")[:1]), 0))
            .filter(Q(log_line_count__gt=F("next_seq")) | Q(status__in=FINISHED))
            .order_by()
            .values_list(
                "id",
                "workspace_id",
                "service_id",
                "created_at",
                "status",
                "log_line_count",
                "next_seq",
            )
        )
        assignments: dict[Destination, dict[str, Route]] = {}
        for job_id, workspace_id, service_id, created_at, status, count, next_seq in rows:
            if created_at < since[workspace_id]:
                continue
            route = self.route_for(workspace_id, service_id)
            if route is None or created_at < route.since:
                # Goes nowhere (paused, dropped, not set up when the job was created).
                self._skip(job_id, count, status in FINISHED)
                continue
            if count <= next_seq:  # ended, and all sent
                LogCursor.objects.update_or_create(job_id=job_id, defaults={"done": True})
                continue
            destination = self.destination(route.host, route.port)
            current = self._assigned.get(job_id)
            if current is not None and current is not destination:
                current._unassign(job_id)  # its settings moved it elsewhere
            self._assigned[job_id] = destination
            assignments.setdefault(destination, {})[job_id] = route
        for destination in self.destinations():  # each gets this scan's list (maybe empty)
            destination.assign(assignments.get(destination, {}))
        self._assigned = {job: dest for dest, jobs in assignments.items() for job in jobs}

    def _skip(self, job_id: str, count: int, finished: bool) -> None:
        current = self._assigned.pop(job_id, None)
        if current is not None:
            current._unassign(job_id)
        LogCursor.objects.update_or_create(
            job_id=job_id, defaults={"next_seq": count, "done": finished}
        )

    def finished(self, job_id: str) -> None:
        """A sender is done with a job (all sent and ended, or the job is gone)."""
        self._assigned.pop(job_id, None)

    # Routes and destinations.

    def route_for(self, workspace_id: str, service_id: str) -> Route | None:
        key = (workspace_id, service_id)
        cached = self._routes.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        route = resolve_route(*key)
        self._routes[key] = (time.monotonic() + ROUTE_TTL, route)
        return route

    def route_of_job(self, job_id: str) -> Route | None:
        key = Job.objects.filter(pk=job_id).values_list("workspace_id", "service_id").first()
        return None if key is None else self.route_for(*key)

    def destination(self, host: str, port: int) -> Destination:
        key = (host, port)
        with self._lock:
            destination = self._destinations.get(key)
            if destination is None:
                destination = self._destinations[key] = Destination(self, host, port)
            return destination

    def forget(self, destination: Destination) -> bool:
        """Drop an idle destination from the registry (a later job makes a new one). Under
        the registry's lock, so a job assigned meanwhile keeps it (then this says False)."""
        with self._lock:
            key = (destination.host, destination.port)
            if self._destinations.get(key) is not destination or not destination.idle():
                return False
            del self._destinations[key]
            return True

    def invalidate(self) -> None:
        self._routes.clear()

    def destinations(self) -> list[Destination]:
        return list(self._destinations.values())

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop scanning and sending (and give up the leases); what is not sent yet is sent by
        the next process, from the cursors."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            destinations, self._destinations = list(self._destinations.values()), {}
            self._thread = None
        for destination in destinations:
            destination.stop(timeout)
        self._assigned.clear()
        self.stats.maybe_flush(force=True)
        self._routes.clear()


forwarder = Forwarder()


def _reset_after_fork() -> None:
    # A forked child (a Celery prefork worker) inherits the registry but not the threads.
    global forwarder
    forwarder = Forwarder()


os.register_at_fork(after_in_child=_reset_after_fork)


def start() -> None:
    """Forward from this process (a worker serving the jobs queue)."""
    forwarder.start()


def lines_stored_here(job_id: str) -> None:
    """Receives ``jobs.logs.store.lines_stored`` (through ``logstreams.apps``): a wake-up hint
    to the scan; never raises, never waits."""
    forwarder.wake()


def invalidate_routes(**kwargs: object) -> None:
    forwarder.invalidate()


def flush_at_exit() -> None:
    forwarder.shutdown(timeout=2.0)

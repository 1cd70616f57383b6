"""Log streams: every job log line to the workspace's syslog destination.

Where lines go: a service's override (``drop``, or ``send`` to a custom destination with its own
token) wins over the workspace default; nothing is sent while the workspace's stream is paused.

How forwarding stays out of a job's way: the runner's ``jobs.logs.store.lines_stored``
signal calls ``forward_batch`` (connected by ``logstreams.apps``) after each stored batch; it
only appends the lines to the bounded buffer of the job's ``transport.Destination`` and
returns, and that destination's own thread sends them. Each process keeps one ``Forwarder``:
its destinations and, for ``ROUTE_TTL`` seconds, where each service's lines go.
"""

import logging
import os
import threading
import time
from dataclasses import dataclass

from jobs.models import Job
from logstreams.models import ServiceLogStream, StreamSetting, WorkspaceLogStream
from logstreams.streams import parse_endpoint
from logstreams.syslog import message_prefix
from logstreams.transport import Destination, Stats
from services.models import Service

log = logging.getLogger(__name__)

ROUTE_TTL = 5.0  # seconds a process trusts its cached view of a workspace's settings


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


class Forwarder:
    """One per process: its destinations, and where each job's lines go (cached for
    ``ROUTE_TTL`` seconds)."""

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
            if not destination.idle():
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
    """Receives ``jobs.logs.store.lines_stored`` (through ``logstreams.apps``): queue the lines
    (with ``seq``, ``timestamp``, ``stream``, ``text``); never raise, never wait on the network."""
    try:
        forwarder.forward(job_id, lines)
    except Exception:
        log.exception("log stream: could not queue lines of %s", job_id)


def invalidate_routes(**kwargs) -> None:
    forwarder.invalidate()


def flush_at_exit() -> None:
    forwarder.shutdown(timeout=2.0)

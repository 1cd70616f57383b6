"""What a job used: its container's memory and CPU, read while it runs, and what to say about it.

Readings come from the kernel's own accounting of the container's cgroup, read as files
(``CgroupReader``): a few hundred microseconds for every running job, where the engine's stats
endpoint blocks for one to two seconds a call. The cgroup is found from the container's main
process (``/proc/<pid>/cgroup`` and this host's cgroup mounts), v1 or v2, whichever cgroup driver
the engine uses; only a runner that cannot read them (an engine on another machine, a runner in a
container without the host's /proc) falls back to the stats endpoint (``StatsReader``).

One ``UsageSampler`` thread per supervisor reads every watched job each
``JOB_USAGE_SAMPLE_SECONDS``, off the log-ingest path: it never takes a lock a follower takes,
and its database writes are its own. It keeps the peak (the kernel's high-water mark: v1
``memory.max_usage_in_bytes``, v2 ``memory.peak``), the CPU seconds so far and a bounded series
(``Series``: at most MAX_POINTS, pairs merged when full, keeping the larger memory), and writes
them every FLUSH_EVERY seconds while the job runs, and once more when it ends, with the end
itself (``runner.record_exit``). The engine removes a container's cgroup the moment it exits, so
the last reading is the one taken before: a job killed for memory reached its limit, and its
peak says so (``finish``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from docker import DockerClient
from docker.errors import DockerException, NotFound

from jobs.models import Job, JobStatus, JobUsage
from services.models import Plan

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
MAX_POINTS = 720  # per job: 24 min at 2 s, then every merge doubles the step
FLUSH_EVERY = 10.0  # seconds between two writes of a running job's usage
HINT_ABOVE = 0.9  # a peak above this share of the plan's memory earns a hint
PROC = Path("/proc")


# --- reading a container's cgroup ------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    memory_bytes: int  # now
    peak_bytes: int | None  # the kernel's high-water mark, when it keeps one
    cpu_seconds: float  # since the container started
    # When the CPU count was read (unix seconds), not when the sampler got round to storing it:
    # a pass held up by a flush or a loaded machine would otherwise squeeze the CPU used over a
    # whole interval into a shorter one and show more cores than the plan's quota allows.
    at: float = field(default_factory=time.time, compare=False)


@dataclass(frozen=True)
class CgroupReader:
    """The files of one container's cgroup (v1: memory and cpuacct hierarchies; v2: one)."""

    memory: Path
    peak: Path | None
    cpu: Path
    version: int

    def read(self) -> Reading:
        """Raises OSError once the cgroup is gone (the container exited)."""
        memory = int(self.memory.read_text())
        peak = None
        if self.peak is not None:
            try:
                peak = int(self.peak.read_text())
            except (OSError, ValueError):
                peak = None
        at = time.time()
        if self.version == 1:
            cpu = int(self.cpu.read_text()) / 1e9  # cpuacct.usage: nanoseconds
        else:
            cpu = 0.0
            for line in self.cpu.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    cpu = int(value) / 1e6
                    break
        return Reading(memory, peak, cpu, at)


def _mounts(mountinfo: str) -> tuple[tuple[str, Path] | None, dict[str, tuple[str, Path]]]:
    """This host's cgroup mounts from /proc/self/mountinfo, as (mount root, mount point): the
    v2 mount's, and each v1 controller's."""
    unified: tuple[str, Path] | None = None
    v1: dict[str, tuple[str, Path]] = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        root, point, fstype = fields[3], Path(fields[4]), rest[0]
        if fstype == "cgroup2":
            unified = unified or (root, point)
        elif fstype == "cgroup":
            for option in rest[2].split(","):
                v1.setdefault(option, (root, point))
    return unified, v1


def _inside(root: str, point: Path, path: str) -> Path:
    """A cgroup path (as /proc/<pid>/cgroup names it) under a mount of hierarchy ``root``."""
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    return point / path.lstrip("/")


def find_cgroup(pid: int | None, container_id: str, parent: str = "") -> CgroupReader | None:
    """The cgroup files of a container whose main process is ``pid``, or None when this host
    cannot read them. Without a visible pid (another pid namespace), the engine's usual places
    for a container's cgroup are tried: ``<parent or /docker>/<id>`` (cgroupfs driver) and
    ``system.slice/docker-<id>.scope`` (systemd driver)."""
    try:
        unified, v1 = _mounts((PROC / "self" / "mountinfo").read_text())
    except OSError:
        return None
    paths: dict[str, str] = {}
    if pid:
        try:
            for line in (PROC / str(pid) / "cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                for controller in controllers.split(",") if controllers else [""]:
                    paths[controller] = path
        except (OSError, ValueError):
            paths = {}
    guesses = [
        f"{parent or '/docker'}/{container_id}",
        f"/system.slice/docker-{container_id}.scope",
    ]
    if "memory" in v1 and ("cpuacct" in v1 or "cpu,cpuacct" in v1):
        memory_root, memory_point = v1["memory"]
        cpu_root, cpu_point = v1.get("cpuacct") or v1["cpu,cpuacct"]
        for memory_path, cpu_path in [(paths.get("memory"), paths.get("cpuacct"))] + [
            (guess, guess) for guess in guesses
        ]:
            if not memory_path or not cpu_path:
                continue
            memory = _inside(memory_root, memory_point, memory_path)
            cpu = _inside(cpu_root, cpu_point, cpu_path)
            if (memory / "memory.usage_in_bytes").exists() and (cpu / "cpuacct.usage").exists():
                return CgroupReader(
                    memory / "memory.usage_in_bytes",
                    memory / "memory.max_usage_in_bytes",
                    cpu / "cpuacct.usage",
                    1,
                )
    if unified is not None:
        for candidate in [paths.get(""), *guesses]:
            if not candidate:
                continue
            folder = _inside(*unified, candidate)
            if (folder / "memory.current").exists() and (folder / "cpu.stat").exists():
                peak = folder / "memory.peak"
                return CgroupReader(
                    folder / "memory.current",
                    peak if peak.exists() else None,
                    folder / "cpu.stat",
                    2,
                )
    return None


class StatsReader:
    """The engine's stats endpoint, for a runner that cannot read the cgroup files: from tens of
    milliseconds to a second a call with ``one_shot`` (API 1.41), two seconds without (the
    engine waits for a second sample), where the files take about 100 µs: the fallback.
    ``client`` gives the sampler's Docker client (one for its thread)."""

    def __init__(self, client: Callable[[], DockerClient], container_id: str) -> None:
        self.client = client
        self.container_id = container_id

    def read(self) -> Reading:
        client = self.client()
        try:
            try:
                stats = client.api.stats(self.container_id, stream=False, one_shot=True)
            except DockerException as exc:
                if "one_shot" not in str(exc):
                    raise
                stats = client.api.stats(self.container_id, stream=False)
        except NotFound as exc:
            raise OSError(f"container {self.container_id} is gone") from exc
        except DockerException as exc:
            raise OSError(str(exc)) from exc
        memory = stats.get("memory_stats") or {}
        cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        if not memory.get("usage") or cpu is None:
            raise OSError(f"container {self.container_id} has no stats (not running)")
        return Reading(
            int(memory["usage"]), memory.get("max_usage") or None, int(cpu) / 1e9, _read_at(stats)
        )


def _read_at(stats: dict) -> float:
    """The engine's own time of a stats sample (``read``, RFC 3339 with nanoseconds), or now."""
    try:
        stamp = str(stats["read"])
        seconds, _, fraction = stamp.rstrip("Z").partition(".")
        whole = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        at = whole.timestamp() + float(f"0.{fraction or 0}")
    except (KeyError, ValueError):
        return time.time()
    return at if at > 0 else time.time()  # a stopped container's sample is dated year 1


# --- the series --------------------------------------------------------------------------------


@dataclass
class Series:
    """A job's points ``[unix seconds, memory bytes, CPU seconds so far]``, at most ``limit``:
    when full, neighbours are merged in pairs (the later time and CPU total, the larger memory:
    a spike is never averaged away) and the step doubles."""

    step: float
    points: list[list[float]] = field(default_factory=list)
    limit: int = MAX_POINTS

    def add(self, at: float, memory: int, cpu: float) -> None:
        if self.points and at - self.points[-1][0] < self.step * 0.75:
            last = self.points[-1]  # within the current step: fold it into the last point
            self.points[-1] = [at, max(last[1], memory), cpu]
            return
        self.points.append([round(at, 3), memory, round(cpu, 6)])
        if len(self.points) > self.limit:
            self.merge()

    def merge(self) -> None:
        merged = []
        for i in range(0, len(self.points) - 1, 2):
            first, second = self.points[i], self.points[i + 1]
            merged.append([second[0], max(first[1], second[1]), second[2]])
        if len(self.points) % 2:
            merged.append(self.points[-1])
        self.points = merged
        self.step *= 2


# --- the sampler -------------------------------------------------------------------------------


@dataclass
class Watch:
    """One running job the sampler reads."""

    job_id: str
    container_id: str
    pid: int | None = None
    reader: CgroupReader | StatsReader | None = None
    series: Series | None = None  # loaded from JobUsage on the first reading (a restart resumes)
    peak: int | None = None
    cpu: float | None = None
    flushed_at: float = 0.0
    changed: bool = False
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, reading: Reading, at: float) -> None:
        assert self.series is not None
        self.peak = max(self.peak or 0, reading.peak_bytes or 0, reading.memory_bytes)
        self.cpu = max(self.cpu or 0.0, reading.cpu_seconds)
        self.series.add(at, reading.memory_bytes, reading.cpu_seconds)
        self.changed = True

    def fields(self) -> dict:
        fields: dict = {}
        if self.peak is not None:
            fields["peak_memory_bytes"] = self.peak
        if self.cpu is not None:
            fields["cpu_seconds"] = round(self.cpu, 3)
        return fields


class UsageSampler(threading.Thread):
    """Reads every watched job's container each ``every`` seconds (see the module's docstring).
    ``watch`` and ``finish`` are called from other threads (the supervisor's, and the thread
    that starts a job); readings and writes happen here, except the last ones, in ``finish``."""

    def __init__(
        self, client_factory: Callable[[], DockerClient], every: float | None = None
    ) -> None:
        super().__init__(name="oneoff-usage", daemon=True)
        self.client_factory = client_factory
        self.client: DockerClient | None = None  # this thread's, made when first needed
        self.every = settings.JOB_USAGE_SAMPLE_SECONDS if every is None else every
        self.watches: dict[str, Watch] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.wake = threading.Event()

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def watch(self, job_id: str, container_id: str, pid: int | None = None) -> None:
        """Read this job's container from now on (once; a second call changes nothing)."""
        if not self.enabled:
            return
        with self.lock:
            if job_id in self.watches:
                return
            self.watches[job_id] = Watch(job_id, container_id, pid)
        self.wake.set()  # a first reading now: a short job may not live until the next pass

    def watching(self, job_id: str) -> bool:
        with self.lock:
            return job_id in self.watches

    def keep_only(self, job_ids: set[str]) -> None:
        """Forget jobs that are no longer running here (their end was recorded elsewhere)."""
        with self.lock:
            for job_id in [j for j in self.watches if j not in job_ids]:
                self.watches.pop(job_id).closed = True

    def finish(self, job_id: str, *, oom_killed: bool, memory_limit_mb: int) -> dict:
        """The job's container exited: a last reading if its cgroup is still there, the series
        written, and the usage fields for the end's own update (``runner.record_exit``). A job
        killed for memory reached its plan's limit, whatever the last reading saw. {} for a job
        this sampler never read."""
        with self.lock:
            watch = self.watches.pop(job_id, None)
        if watch is None:
            return {"peak_memory_bytes": memory_limit_mb * MiB} if oom_killed else {}
        with watch.lock:
            watch.closed = True
            if isinstance(watch.reader, CgroupReader):
                # The engine removes the cgroup with the process: then the last pass's stands.
                with contextlib.suppress(OSError, ValueError):
                    self._apply(watch, watch.reader.read())
            if oom_killed:
                watch.peak = max(watch.peak or 0, memory_limit_mb * MiB)
            if watch.series is not None and watch.changed:
                self._write_series(watch)
            return watch.fields()

    # --- the thread --------------------------------------------------------------------------

    def run(self) -> None:
        if not self.enabled:
            return
        try:
            while not self.stopped.is_set():
                started = time.monotonic()
                try:
                    close_old_connections()
                    self.sample()
                except DatabaseError:
                    logger.warning("usage: the database did not answer", exc_info=True)
                    connection.close()
                except Exception:
                    logger.exception("usage sampling failed")
                self.wake.clear()
                self.wake.wait(max(0.05, self.every - (time.monotonic() - started)))
        finally:
            self._close_docker()
            connection.close()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped.set()
        self.wake.set()
        if self.is_alive():
            self.join(timeout)

    def sample(self) -> None:
        """One pass: read every watched job, write those due."""
        with self.lock:
            watches = list(self.watches.values())
        now = time.monotonic()
        for watch in watches:
            if watch.closed:
                continue
            reading = self._read(watch)
            with watch.lock:
                if watch.closed:
                    continue
                if reading is not None:
                    self._apply(watch, reading)
                if watch.changed and now - watch.flushed_at >= FLUSH_EVERY:
                    self._flush(watch)
                    watch.flushed_at = now

    def _read(self, watch: Watch) -> Reading | None:
        if watch.reader is None:
            watch.reader = self._reader(watch)
            if watch.reader is None:
                return None
        try:
            return watch.reader.read()
        except (OSError, ValueError):
            return None  # exited, or the engine did not answer: the next pass tries again

    def _reader(self, watch: Watch) -> CgroupReader | StatsReader | None:
        pid, parent = watch.pid, ""
        if settings.JOB_USAGE_SOURCE == "auto":
            if not pid:
                try:
                    attrs = self._docker().api.inspect_container(watch.container_id)
                except (DockerException, OSError):
                    self._close_docker()  # a new client next time
                    return None
                if attrs["State"].get("Status") != "running":
                    return None
                pid = attrs["State"].get("Pid") or None
                parent = (attrs.get("HostConfig") or {}).get("CgroupParent") or ""
            found = find_cgroup(pid, watch.container_id, parent)
            if found is not None:
                logger.debug("usage of %s from %s", watch.job_id, found.memory.parent)
                return found
        return StatsReader(self._docker, watch.container_id)

    def _docker(self) -> DockerClient:
        if self.client is None:
            self.client = self.client_factory()
        return self.client

    def _close_docker(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _apply(self, watch: Watch, reading: Reading) -> None:
        if watch.series is None:
            watch.series = self._load(watch)
        watch.apply(reading, reading.at)

    def _load(self, watch: Watch) -> Series:
        """The series written so far (a restarted supervisor goes on with it)."""
        stored = JobUsage.objects.filter(job_id=watch.job_id).first()
        if stored is None:
            return Series(step=max(self.every, 0.5))
        return Series(step=stored.step_seconds, points=list(stored.points))

    def _flush(self, watch: Watch) -> None:
        """Write a running job's usage so far (never over an ended job's: the end wrote it)."""
        Job.objects.filter(pk=watch.job_id, status=JobStatus.RUNNING).update(**watch.fields())
        self._write_series(watch)

    @staticmethod
    def _write_series(watch: Watch) -> None:
        assert watch.series is not None
        JobUsage.objects.update_or_create(
            job_id=watch.job_id,
            defaults={"step_seconds": watch.series.step, "points": watch.series.points},
        )
        watch.changed = False


# --- what to say about it ----------------------------------------------------------------------


def mb(value: int | None) -> float | None:
    """Bytes as MB (MiB, like the plans' memory), one decimal; None stays None."""
    return None if value is None else round(value / MiB, 1)


def memory_words(megabytes: int) -> str:
    """A plan's memory as people say it: "512 MB", "2 GB"."""
    if megabytes >= 1024 and megabytes % 1024 == 0:
        return f"{megabytes // 1024} GB"
    return f"{megabytes} MB"


def needs_more_memory(job: Job) -> bool:
    """Killed for memory, or peaked above HINT_ABOVE of its plan's memory."""
    if "oomKilled" in (job.reason or {}):
        return True
    peak = job.peak_memory_bytes
    return peak is not None and peak > HINT_ABOVE * job.plan.memory_mb * MiB


def next_plan(job: Job) -> Plan | None:
    """The smallest plan with more memory than the job's, of the kind its service may use
    (``Service.valid_plans``: the same kind as the job's own plan)."""
    return (
        Plan.objects.filter(kind=job.plan.kind, memory_mb__gt=job.plan.memory_mb)
        .order_by("memory_mb", "price_monthly", "id")
        .first()
    )


def usage_hint(job: Job) -> str:
    """A bigger plan for a job that ran out of memory or nearly did, in words ("" for one that
    did not): "peaked at 498 of 512 MB: try Standard, 2 GB", or that no bigger plan exists."""
    if not needs_more_memory(job):
        return ""
    limit = job.plan.memory_mb
    if "oomKilled" in (job.reason or {}):
        what = f"ran out of memory at {memory_words(limit)}"
    else:
        what = f"peaked at {round(job.peak_memory_bytes / MiB)} of {limit} MB"  # type: ignore[operator]
    bigger = next_plan(job)
    if bigger is None:
        return f"{what}, and no plan with more memory exists for this service"
    return f"{what}: try {bigger.name}, {memory_words(bigger.memory_mb)}"


# --- Render's metrics shape ----------------------------------------------------------------------


def memory_values(
    points: list[list[float]], start: float, end: float, resolution: float
) -> list[tuple[float, float]]:
    """``(bucket start, bytes)`` per ``resolution`` seconds from ``start``: the most memory a
    bucket's points saw (a spike stays visible at any resolution)."""
    buckets: dict[int, float] = {}
    for at, memory, _cpu in points:
        if start <= at <= end:
            index = int((at - start) // resolution)
            buckets[index] = max(buckets.get(index, 0), memory)
    return [(start + index * resolution, value) for index, value in sorted(buckets.items())]


def cpu_values(
    points: list[list[float]],
    start: float,
    end: float,
    resolution: float,
    aggregation: str = "AVG",
) -> list[tuple[float, float]]:
    """``(bucket start, cores)`` per ``resolution`` seconds from ``start``: CPU seconds used per
    second between two points, over a bucket the time-weighted mean (``AVG``) or the largest
    (``MAX``) or smallest (``MIN``) of its points' rates. None before the first point: the
    cgroup's count starts before the engine's StartedAt (the runtime's own setup is in it)."""
    rates: dict[int, list[tuple[float, float]]] = {}
    previous: tuple[float, float] | None = None
    for at, _memory, cpu in points:
        if previous is not None and at > previous[0]:
            elapsed = at - previous[0]
            used = max(0.0, cpu - previous[1])
            if start <= at <= end:
                rates.setdefault(int((at - start) // resolution), []).append((used, elapsed))
        previous = (at, cpu)
    values = []
    for index, items in sorted(rates.items()):
        if aggregation == "MAX":
            value = max(used / elapsed for used, elapsed in items)
        elif aggregation == "MIN":
            value = min(used / elapsed for used, elapsed in items)
        else:
            value = sum(used for used, _ in items) / sum(elapsed for _, elapsed in items)
        values.append((start + index * resolution, round(value, 4)))
    return values

"""Docker: start a job's container, and map a container's end to the job's outcome.

The database row is the truth. Every transition is a compare-and-set UPDATE on ``status``, so a
message delivered twice, a restarted worker or a race with cancel can never move a job twice, and
terminal states never change. Containers have a deterministic name (a second create fails with
409) and carry labels naming this installation, the job, the service and the workspace, which is
how the supervisor (jobs/supervisor.py) lists them again after a crash; it then acts only on a
container it knows by record (``is_own``), since any image can carry the same labels.

Every function takes an optional Docker client so unit tests can pass a fake.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import docker
from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from docker import DockerClient
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import (  # type: ignore[attr-defined] # not in the stubs
    Container,
    _create_container_args,
)
from docker.types import LogConfig

from jobs import reasons
from jobs.models import EnvSnapshot, Job, JobLogLine, JobStatus
from services.builds.errors import BuildError
from services.builds.images import pull_job_image
from services.models import EnvVar, Service
from services.transitions import transition

logger = logging.getLogger(__name__)

LABEL_INSTANCE = "oneoff.instance"
LABEL_JOB = "oneoff.job"
LABEL_SERVICE = "oneoff.service"
LABEL_WORKSPACE = "oneoff.workspace"
DOCKER_TIMEOUT = 30  # seconds for one Docker API call
CLAIM_STALE = timedelta(seconds=60)  # a claim this old, still pending, may be taken over
# A start message sent (or retried) this recently may still be on its way: the sweep sends no
# other. Longer than start_job's longest retry countdown, so a job waiting for the engine keeps
# one message, not one more per sweep.
START_MESSAGE_LIVE = timedelta(seconds=60)

_local = threading.local()

# This process's supervisor, if it has one, follows a job's log from the moment its container
# runs (``jobs.supervisor.Supervisor.starting``, ``launched`` and ``follow_now``):
# ``on_starting(job id)`` is called once the container runs; ``on_launched(job, container id)``
# may take the rest of the start (``mark_running``) off start_job's thread, saying so with True;
# ``on_started(job id, Docker client, the container's attrs)`` once the job's row says it runs.
on_starting: Callable[[str], None] | None = None
on_launched: Callable[[Job, str], bool] | None = None
on_started: Callable[[str, DockerClient, dict], None] | None = None


# The API version each engine (by DOCKER_HOST) answered this process first. The SDK asks for it
# (GET /version) with every client it makes otherwise: one round trip more for every log
# follower, exit waiter and stopper, that is per job. An engine answers older API versions
# than its own, so one restarted or upgraded meanwhile still takes the version asked first.
_api_versions: dict[str, str] = {}


def new_client(timeout: int = DOCKER_TIMEOUT) -> DockerClient:
    """A Docker client from the environment (DOCKER_HOST etc.)."""
    host = os.environ.get("DOCKER_HOST", "")
    version = _api_versions.get(host)
    client = docker.from_env(timeout=timeout, version=version)
    if version is None:
        _api_versions[host] = client.api.api_version
    return client


def get_client() -> DockerClient:
    """This thread's Docker client (requests sessions are not shared between threads)."""
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = new_client()
    return client


def reset_client() -> None:
    client = getattr(_local, "client", None)
    _local.client = None
    if client is not None:
        try:
            client.close()
        except Exception:
            logger.debug("closing a Docker client", exc_info=True)


def instance_filter() -> dict:
    """Narrows the engine's listing to candidates; labels are never proof (see ``is_own``)."""
    return {"label": f"{LABEL_INSTANCE}={settings.ONEOFF_INSTANCE}"}


def is_own(job_id: str, job: Job | None, item: dict) -> bool:
    """Whether a listed container (``docker ps`` shape) is ``job_id``'s own container.

    Known by record, not by label: any image can carry ``oneoff.*`` labels (a Dockerfile's
    ``LABEL``), and so can every container made from it, a ``docker build`` step's included. A
    job's container is the one whose id was recorded when it started; before that (a start not
    recorded), the one with the job's deterministic name, which only the runner gives, made from
    the job's build image. A job that is gone has only its name to go by."""
    if job is not None and job.container_id:
        return bool(item.get("Id") == job.container_id)
    name = job.container_name if job is not None else Job(id=job_id).container_name
    swarm_task = settings.JOB_BACKEND == "swarm" and is_swarm_task(name, item)
    if f"/{name}" not in (item.get("Names") or []) and not swarm_task:
        return False
    return job is None or item.get("ImageID") == job.build.image_id


SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"


def is_swarm_task(name: str, item: dict) -> bool:
    """Whether a listed container is the task of the swarm service ``name`` (JOB_BACKEND=swarm:
    a job's service has the job's container name, and Swarm names its task's container
    ``<service>.<node id>.<task id>``)."""
    labels = item.get("Labels") or {}
    names = item.get("Names") or []
    return labels.get(SWARM_SERVICE_LABEL) == name and any(n.startswith(f"/{name}.") for n in names)


LOG_FILES = 4  # json-file pieces a job's on-host log is rotated through (Docker's max-file)
LOG_FILE_MIN_BYTES = 4 * 1024 * 1024  # three fill slower than a busy follower looks again


def log_config() -> LogConfig:
    """json-file, rotated through LOG_FILES pieces that together hold about JOB_LOG_MAX_BYTES:
    the on-host log of a job stays near the cap of what is stored, however long it prints. The
    follower holds every piece open from when it appears (jobs.logs.files), starting the moment
    the container runs (``on_started``), so rotation drops nothing it has not read."""
    size = max(settings.JOB_LOG_MAX_BYTES // LOG_FILES, LOG_FILE_MIN_BYTES)
    return LogConfig(type="json-file", config={"max-size": str(size), "max-file": str(LOG_FILES)})


class Disk(enum.StrEnum):
    """How a job's writes are bounded (JOB_DISK_MODE; ``auto`` picks one per engine)."""

    SIZE = "size"  # the engine bounds the writable layer (storage_opt size: xfs quota, btrfs…)
    READ_ONLY = "read-only"  # read-only root filesystem, tmpfs scratch (JOB_SCRATCH_DIRS)
    OFF = "off"  # an unbounded writable layer on the engine's disk


# Storage drivers that can bound a container's writable layer (``--storage-opt size``); overlay2
# only on xfs mounted with pquota, which ``docker info`` does not show: tried, then remembered.
SIZE_DRIVERS = {"devicemapper", "btrfs", "zfs", "windowsfilter"}
_size_support: dict[str, bool] = {}  # engine (base_url) -> storage_opt size works


def disk_mode(client: DockerClient) -> Disk:
    """JOB_DISK_MODE, with ``auto`` resolved for this engine (asked once per process)."""
    mode = settings.JOB_DISK_MODE
    if mode != "auto":
        return Disk(mode)
    key = str(getattr(client.api, "base_url", ""))
    if key not in _size_support:
        info = client.info()
        driver = info.get("Driver", "")
        backing = dict(info.get("DriverStatus") or []).get("Backing Filesystem", "")
        _size_support[key] = driver in SIZE_DRIVERS or (driver == "overlay2" and backing == "xfs")
        logger.info(
            "jobs' disk writes are bounded by %s (storage driver %s on %s)",
            "the engine (storage_opt size)" if _size_support[key] else "a read-only root and tmpfs",
            driver or "?",
            backing or "?",
        )
    return Disk.SIZE if _size_support[key] else Disk.READ_ONLY


def size_unsupported(client: DockerClient, exc: APIError) -> bool:
    """A create refused because the engine cannot bound the writable layer: remember it, so the
    next jobs go read-only straight away. True when that was the refusal."""
    text = _explain(exc).lower()
    if settings.JOB_DISK_MODE != "auto" or not ("storage-opt" in text or "storage opt" in text):
        return False
    _size_support[str(getattr(client.api, "base_url", ""))] = False
    logger.warning("the engine cannot bound a container's writable layer (%s)", _explain(exc))
    return True


def scratch_mb(job: Job) -> int:
    """Size of each tmpfs scratch mount: half the plan's memory (tmpfs pages count against the
    memory limit, so a full scratch still leaves the command room to run; a write past it gets
    ENOSPC rather than an OOM kill), and never more than JOB_DISK_MB."""
    return max(1, min(settings.JOB_DISK_MB, job.plan.memory_mb // 2))


def container_config(job: Job, disk: Disk) -> dict:
    """Keyword arguments for ``client.containers.create`` (the Docker SDK)."""
    plan = job.plan
    memory = f"{plan.memory_mb}m"
    config = {
        # The build's image in JOB_REGISTRY by digest when it was pushed there (``start`` pulls
        # it onto an engine that never built it), else the engine's image id.
        "image": job.build.job_image,
        "command": ["/bin/sh", "-c", job.start_command],
        # Exactly the snapshot: the image's own ENV (e.g. PATH) still applies underneath.
        "environment": job.env_snapshot.values,
        "name": job.container_name,
        "labels": {
            LABEL_INSTANCE: settings.ONEOFF_INSTANCE,
            LABEL_JOB: job.id,
            LABEL_SERVICE: job.service_id,
            LABEL_WORKSPACE: job.workspace_id,
        },
        "mem_limit": memory,
        "memswap_limit": memory,  # equal to memory: no swap on top
        "nano_cpus": int(plan.cpu * 1_000_000_000),
        "pids_limit": settings.JOB_PIDS_LIMIT,
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        "cap_add": list(settings.JOB_CAP_ADD) or None,
        "privileged": False,
        "network_mode": settings.JOB_NETWORK,
        # An init process forwards SIGTERM to the command and reaps zombies (a shell as PID 1
        # would ignore SIGTERM and every cancel would wait for the SIGKILL).
        "init": True,
        "log_config": log_config(),
        "detach": True,
    }
    if settings.JOB_USER:
        config["user"] = settings.JOB_USER
    if disk == Disk.SIZE:
        config["storage_opt"] = {"size": f"{settings.JOB_DISK_MB}M"}
    elif disk == Disk.READ_ONLY:
        size = scratch_mb(job)
        config["read_only"] = True
        options = f"rw,exec,nosuid,nodev,size={size}m,mode=1777"
        config["tmpfs"] = dict.fromkeys(settings.JOB_SCRATCH_DIRS, options)
    return config


def docker_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 nanosecond times (``0001-01-01T00:00:00Z`` means unset), as UTC."""
    if not value or value.startswith("0001-"):
        return None
    main = value.rstrip("Z")
    offset = "+00:00"
    if len(main) > 6 and main[-6] in "+-" and main[-3] == ":":
        main, offset = main[:-6], main[-6:]
    if "." in main:
        main, frac = main.split(".", 1)
        main = f"{main}.{(frac + '000000')[:6]}"
    return datetime.fromisoformat(main + offset).astimezone(UTC)


class StartOutcome(enum.StrEnum):
    STARTED = "started"
    SKIPPED = "skipped"  # not pending, claimed elsewhere, or lost a race: nothing to do
    WAITING = "waiting"  # the Docker Engine did not answer: try again later
    QUEUED = "queued"  # waits for a slot of its service's max_concurrent_jobs (start_waiting)
    FAILED = "failed"  # could not start (bad image, timed out waiting for Docker)


def claim(job_id: str) -> bool:
    """Compare-and-set: a pending job nobody holds (or whose holder went quiet) becomes ours."""
    now = timezone.now()
    free = Q(host="") | Q(host=settings.RUNNER_HOST) | Q(claimed_at__lt=now - CLAIM_STALE)
    return bool(
        Job.objects.filter(free, pk=job_id, status=JobStatus.PENDING).update(
            host=settings.RUNNER_HOST, claimed_at=now
        )
    )


def _busy(service_id: str, *, besides: str = "") -> int:
    """A service's jobs that hold a slot of its ``max_concurrent_jobs``: running, or claimed by a
    runner (a start in progress, or a container that may exist although the row says pending)."""
    jobs = Job.objects.filter(service_id=service_id).exclude(pk=besides)
    held = Q(status=JobStatus.RUNNING) | Q(status=JobStatus.PENDING, claimed_at__isnull=False)
    return jobs.filter(held).count()


def _waiting(service_id: str) -> QuerySet[Job]:
    """A service's jobs waiting for a slot (unclaimed, pending, not being canceled), in
    creation order."""
    return Job.objects.filter(
        service_id=service_id,
        status=JobStatus.PENDING,
        claimed_at__isnull=True,
        cancel_requested_at__isnull=True,
    ).order_by("created_at", "id")


def claim_slot(job: Job) -> bool | None:
    """``claim`` within the service's ``max_concurrent_jobs``: True when claimed, False when
    someone else holds the job, None when it must wait its turn (the job's ``note`` says why).

    Race-free: the service's row lock makes "count the slots held" and the claim one step, so
    two workers starting two jobs at once never both take the last slot. First come, first
    served: a job waits while older jobs of the service wait, so they start in creation order
    whichever start message arrives first. A job that already holds a claim (an earlier
    delivery's, or a stale one being taken over) holds its slot already."""
    with transaction.atomic():
        limit = (
            Service.all_objects.select_for_update()  # a deleted service's jobs still end
            .filter(pk=job.service_id)
            .values_list("max_concurrent_jobs", flat=True)
            .first()
        )
        if limit is None:
            return claim(job.pk)
        busy = _busy(job.service_id, besides=job.pk)
        earlier = Q(created_at__lt=job.created_at) | Q(created_at=job.created_at, pk__lt=job.pk)
        ahead = _waiting(job.service_id).filter(earlier).count()
        if busy + ahead < limit:
            return claim(job.pk)
        note = f"waiting: {busy} of {limit} concurrent jobs of this service are running"
        if ahead == 1:
            note += "; 1 job created before this one waits too"
        elif ahead:
            note += f"; {ahead} jobs created before this one wait too"
        Job.objects.filter(pk=job.pk, status=JobStatus.PENDING, claimed_at__isnull=True).update(
            note=note, slot_waited_at=timezone.now()
        )
        return None


def start_waiting(service_id: str, *, limit_changed: bool = False) -> int:
    """A job of the service ended (or released its claim), or its limit changed: send start
    messages to the jobs waiting for a slot, oldest first, as many as slots are free, so they
    start now rather than at the next sweep. A message too many only makes a start that waits
    again. Returns how many were sent."""
    from jobs.launch import enqueue_start

    limit = (
        Service.all_objects.filter(pk=service_id)
        .values_list("max_concurrent_jobs", flat=True)
        .first()
    )
    if limit is None and not limit_changed:
        return 0
    free = 100 if limit is None else limit - _busy(service_id)
    if free <= 0:
        return 0
    waiting = list(_waiting(service_id).values_list("pk", flat=True)[: min(free, 100)])
    return sum(enqueue_start(job_id) for job_id in waiting)


MAX_CONCURRENT_JOBS = 1000  # the most a service's limit may say (more is no limit at all)


def set_concurrency_limit(service: Service, limit: int | None) -> None:
    """Set a service's ``max_concurrent_jobs`` (None: no limit) and start the jobs a higher (or
    no) limit lets run now. Jobs already running are never stopped by a lower one."""
    from services.errors import Invalid

    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise Invalid("maxConcurrentJobs", "must be a whole number, or null for no limit")
        if not 1 <= limit <= MAX_CONCURRENT_JOBS:
            raise Invalid(
                "maxConcurrentJobs",
                f"must be between 1 and {MAX_CONCURRENT_JOBS}, or null for no limit",
            )
    Service.objects.filter(pk=service.pk).update(max_concurrent_jobs=limit)
    service.max_concurrent_jobs = limit
    transaction.on_commit(lambda: start_waiting(service.pk, limit_changed=True))


def _freed(job_id: str) -> None:
    """A job that held (or might have held) a slot ended: its service's next jobs may start."""
    service_id = Job.objects.filter(pk=job_id).values_list("service_id", flat=True).first()
    if service_id is not None:
        start_waiting(service_id)


def scrub(job_id: str, message: str) -> str:
    """``message`` (an engine error, which may echo ``KEY=value``) without the job's env values:
    viewers read ``reason`` but may not read values."""
    snapshot = EnvSnapshot.objects.filter(jobs=job_id).only("data").first()
    return EnvVar.scrub(message, snapshot.values.values()) if snapshot else message


def fail_start(job_id: str, message: str, *, from_status: str = JobStatus.PENDING) -> bool:
    now = timezone.now()
    message = scrub(job_id, message)
    failed = bool(
        transition(
            Job.objects.filter(pk=job_id, status=from_status),
            status=JobStatus.FAILED,
            finished_at=now,
            reason=reasons.start_error(message),
            billed_seconds=0,
            cost=0,
            note="",
        )
    )
    if failed:
        logger.info("job %s failed to start: %s", job_id, message)
        _freed(job_id)
    return failed


def cancel_unstarted(job_id: str) -> bool:
    """End a pending job asked to cancel that has no container (and so never ran): ``canceled``,
    owing nothing."""
    job = Job.objects.select_related("canceled_by").filter(pk=job_id).first()
    if job is None:
        return False
    now = timezone.now()
    canceled = bool(
        transition(
            Job.objects.filter(pk=job_id, status=JobStatus.PENDING),
            status=JobStatus.CANCELED,
            finished_at=now,
            reason=reasons.canceled_by(job.canceled_by),
            billed_seconds=0,
            cost=0,
            note="",
        )
    )
    if canceled:
        logger.info("job %s canceled before its container was made", job_id)
        _freed(job_id)
    return canceled


def _carry_out_cancel(job: Job, client: DockerClient | None) -> StartOutcome:
    """A claimed pending job asked to cancel: it is never started. A container made for it by an
    earlier delivery (cut short by a crash or a database error) is this host's supervisor's to
    stop, follow and bill (it adopts it at once: ``Supervisor._handle_pending``); without one,
    the job ends canceled now."""
    try:
        client = client or get_client()
        found = client.api.containers(all=True, filters={"name": job.container_name})
    except (DockerException, OSError) as exc:
        return _wait_for_docker(job.pk, exc, keep_claim=True)
    if any(is_own(job.pk, job, item) for item in found):
        return StartOutcome.SKIPPED
    cancel_unstarted(job.pk)
    return StartOutcome.SKIPPED


def prepare_start(job_id: str, cancel: Callable[[Job], StartOutcome]) -> Job | StartOutcome:
    """The part of a start every backend shares: the pending job, claimed (within its service's
    ``max_concurrent_jobs``), or the outcome that ends the start here. A job asked to cancel is
    handed to ``cancel`` once claimed; one waiting past JOB_START_TIMEOUT fails."""
    job = (
        Job.objects.select_related("plan", "build", "env_snapshot", "service")
        .filter(pk=job_id)
        .first()
    )
    if job is None or job.status != JobStatus.PENDING:
        return StartOutcome.SKIPPED
    if job.cancel_requested_at is not None:
        if not claim(job_id):
            return StartOutcome.SKIPPED  # its holder (or the supervisor) carries the cancel out
        return cancel(job)
    if timezone.now() - job.start_waits_since > timedelta(seconds=settings.JOB_START_TIMEOUT):
        fail_start(
            job_id,
            f"the job could not start within JOB_START_TIMEOUT ({settings.JOB_START_TIMEOUT} s)"
            + (f": {job.note}" if job.note else ""),
        )
        return StartOutcome.FAILED
    if job.claimed_at is None and job.service.max_concurrent_jobs is not None:
        claimed = claim_slot(job)
        if claimed is None:
            return StartOutcome.QUEUED  # start_waiting (or the sweep) sends it again
    else:
        claimed = claim(job_id)
    if not claimed:
        return StartOutcome.SKIPPED
    return job


def start(job_id: str, client: DockerClient | None = None) -> StartOutcome:
    """Start a pending job's container and mark it running. Safe to call any number of times."""
    job = prepare_start(job_id, lambda job: _carry_out_cancel(job, client))
    if isinstance(job, StartOutcome):
        return job
    try:
        client = client or get_client()
    except (DockerException, OSError) as exc:
        return _wait_for_docker(job_id, exc)
    if not job.build.image_id:
        fail_start(job_id, f"build {job.build_id} has no image")
        return StartOutcome.FAILED
    if job.build.registry_image:
        try:
            pull_job_image(client, job.build)
        except BuildError as exc:
            # The registry (or the engine) did not give the image: the job waits, tried again
            # with backoff, and fails with this note past JOB_START_TIMEOUT.
            return _wait_for_registry(job_id, exc)
    try:
        container = _create_or_get(client, job)
    except ContainerRace:
        return StartOutcome.SKIPPED  # the other delivery finishes the start
    except ImageNotFound as exc:
        fail_start(job_id, f"the build's image {job.build.image_id} is gone: {_explain(exc)}")
        return StartOutcome.FAILED
    except APIError as exc:
        fail_start(job_id, f"Docker could not create the container: {_explain(exc)}")
        return StartOutcome.FAILED
    except (DockerException, OSError) as exc:
        return _wait_for_docker(job_id, exc)
    assert container.id is not None  # docker types Model.id as optional; the engine sets it
    try:
        if container.attrs.get("State", {}).get("Status", "created") == "created":
            container.start()
    except (DockerException, OSError) as exc:
        return _start_failed(job, client, exc)
    announce = on_starting
    if announce is not None:
        announce(job_id)
    launched = on_launched
    if launched is not None and launched(job, container.id):
        # The supervisor's own threads finish the start: this worker thread takes the next
        # job's start now, not after an inspect, the row and the follower's start (about
        # 90 ms a job: ``bench_runner.py``'s 100 jobs at once, four at a time). A crash
        # before the row is written leaves a pending job with a running container, which
        # the supervisor adopts (``Supervisor._handle_pending``) as after any crash here.
        return StartOutcome.STARTED
    return mark_running(job, client, container.id)


def mark_running(job: Job, client: DockerClient, container_id: str) -> StartOutcome:
    """The end of a start, once the job's container runs: its inspect (Docker's StartedAt and
    the log's path), the running row, and the log followed from its first line."""
    job_id = job.pk
    try:
        attrs = client.api.inspect_container(container_id)
    except (DockerException, OSError) as exc:
        return _start_failed(job, client, exc)
    started_at = docker_time(attrs["State"].get("StartedAt")) or timezone.now()
    moved = Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(
        status=JobStatus.RUNNING,
        started_at=started_at,
        container_id=container_id,
        host=settings.RUNNER_HOST,
        note="",
    )
    if not moved:
        # Canceled while we were starting it: it must never run. (Unless the supervisor adopted
        # this very container meanwhile: then it is running and stays.)
        if not Job.objects.filter(pk=job_id, container_id=container_id).exists():
            _remove_quietly(client, container_id)
        return StartOutcome.SKIPPED
    logger.info("job %s started on %s (%s)", job_id, settings.RUNNER_HOST, job.plan.name)
    hook = on_started
    if hook is not None:
        try:
            hook(job_id, client, attrs)
        except Exception:
            logger.exception("following %s from its start", job_id)  # the next pass will
    return StartOutcome.STARTED


def _start_failed(job: Job, client: DockerClient, exc: DockerException | OSError) -> StartOutcome:
    """The engine's answer to the start of the job's container, or to the inspect right after
    it, was an error: the container is gone (canceled and cleaned up meanwhile), the engine
    refused (the job fails), or it did not answer (the job waits for it with its claim: the
    container may have started)."""
    if isinstance(exc, NotFound):
        return StartOutcome.SKIPPED
    if isinstance(exc, APIError):
        _remove_quietly(client, job.container_name)
        fail_start(job.pk, f"Docker could not start the container: {_explain(exc)}")
        return StartOutcome.FAILED
    return _wait_for_docker(job.pk, exc, keep_claim=True)


def _wait_for_docker(job_id: str, exc: Exception, *, keep_claim: bool = False) -> StartOutcome:
    """The engine did not answer: release the claim and say why the job waits.

    ``keep_claim``: a container may exist (the engine went away after the create): any host may
    take the job over (``host`` is cleared), but ``claimed_at`` stays, so a cancel goes through
    the runner (``launch.cancel_job``) rather than ending a job whose container may run."""
    reset_client()
    note = f"Waiting for the Docker Engine on {settings.RUNNER_HOST}: {exc}"
    fields: dict = {"host": "", "note": note[:500]}
    if not keep_claim:
        fields["claimed_at"] = None
    Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(**fields)
    return StartOutcome.WAITING


def _wait_for_registry(job_id: str, exc: Exception) -> StartOutcome:
    note = f"Waiting for the job's image on {settings.RUNNER_HOST}: {exc}"
    Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(
        host="", claimed_at=None, note=note[:500]
    )
    return StartOutcome.WAITING


def _create(client: DockerClient, config: dict) -> Container:
    """Create a container from ``container_config``'s keyword arguments. The SDK's
    ``containers.create`` inspects what it made; the start inspects it again once it runs, so
    that first inspect is left out (one engine call less a job: ``bench_runner.py``'s 100 jobs
    at once). The model holds the id only, which ``start`` needs."""
    config = {**config, "version": client.api.api_version}
    created = client.api.create_container(**_create_container_args(config))
    return client.containers.prepare_model({"Id": created["Id"]})


def _create_or_get(client: DockerClient, job: Job) -> Container:
    disk = disk_mode(client)
    try:
        try:
            return _create(client, container_config(job, disk))
        except APIError as exc:
            if disk != Disk.SIZE or not size_unsupported(client, exc):
                raise
            return _create(client, container_config(job, Disk.READ_ONLY))
    except APIError as exc:
        if exc.status_code != 409:
            raise
        # A previous (or concurrent) delivery created it: same deterministic name. Use it if it
        # is ours; a concurrent create may not be visible for a moment.
        for attempt in range(20):
            try:
                container = client.containers.get(job.container_name)
                break
            except NotFound:
                if attempt == 19:
                    raise ContainerRace(job.container_name) from None
                time.sleep(0.05)
        if container.attrs.get("Image") != job.build.image_id:
            raise  # the name is taken by something not made from this job's build image
        return container


class ContainerRace(Exception):
    """Another delivery is creating this job's container right now."""


def _explain(exc: Exception) -> str:
    return getattr(exc, "explanation", None) or str(exc)


def _remove_quietly(client: DockerClient, name_or_id: str) -> None:
    try:
        client.api.remove_container(name_or_id, force=True)
    except NotFound:
        pass
    except (DockerException, OSError):
        logger.warning("could not remove container %s", name_or_id, exc_info=True)


def adopt(job: Job, attrs: dict) -> bool:
    """A pending job whose container already started (its start_job died before recording it):
    mark it running now."""
    started_at = docker_time(attrs["State"].get("StartedAt"))
    if started_at is None:
        return False
    return bool(
        Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
            status=JobStatus.RUNNING,
            started_at=started_at,
            container_id=attrs["Id"],
            host=settings.RUNNER_HOST,
            note="",
        )
    )


def outcome(job: Job, state: dict) -> dict:
    """The fields that end a job, from its container's ``State``."""
    finished_at = docker_time(state.get("FinishedAt")) or timezone.now()
    # The start as stored (the log writer may have moved it earlier) and the last stored line's
    # time, in one query.
    last_line = JobLogLine.objects.filter(job_id=OuterRef("pk")).order_by("-seq")
    job.started_at, last_stamp = (
        Job.objects.filter(pk=job.pk)
        .annotate(last_line=Subquery(last_line.values("timestamp")[:1]))
        .values_list("started_at", "last_line")
        .get()
    )
    started_at = job.started_at or finished_at
    # Never before the start, nor before the last stored line (Docker's clocks disagree by
    # a few microseconds for very short jobs).
    finished_at = max(finished_at, started_at, last_stamp or started_at)
    exit_code = state.get("ExitCode")
    runtime = (finished_at - started_at).total_seconds()
    if job.cancel_requested_at is not None:
        status, reason = JobStatus.CANCELED, reasons.canceled_by(job.canceled_by)
    elif runtime >= job.runtime_limit:
        status, reason = JobStatus.FAILED, reasons.timed_out(job.runtime_limit)
    elif state.get("OOMKilled"):
        status, reason = JobStatus.FAILED, reasons.oom_killed(job.plan.memory_mb)
    elif exit_code == 0:
        status, reason = JobStatus.SUCCEEDED, {}
    else:
        status, reason = JobStatus.FAILED, reasons.non_zero_exit(exit_code)
    job.bill(finished_at)
    return {
        "status": status,
        "finished_at": finished_at,
        "exit_code": exit_code,
        "reason": reason,
        "billed_seconds": job.billed_seconds,
        "cost": job.cost,
    }


def record_exit(job: Job, state: dict, used: dict | None = None) -> bool:
    """End a running job from its exited container's state (compare-and-set on ``running``),
    with its last usage (``jobs.usage.UsageSampler.finish``) in the same update."""
    ended = {**outcome(job, state), **(used or {})}
    recorded = bool(transition(Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING), **ended))
    if recorded:
        logger.info("job %s %s (exit %s)", job.pk, ended["status"], state.get("ExitCode"))
        start_waiting(job.service_id)
    return recorded


def record_lost(job: Job, why: str) -> bool:
    """A running job whose container vanished: it ends ``failed`` (or ``canceled`` if asked)."""
    now = timezone.now()
    if job.cancel_requested_at is not None:
        status, reason = JobStatus.CANCELED, reasons.canceled_by(job.canceled_by)
    else:
        status, reason = JobStatus.FAILED, reasons.evicted(scrub(job.pk, why))
    job.bill(now)
    lost = bool(
        transition(
            Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING),
            status=status,
            finished_at=now,
            reason=reason,
            billed_seconds=job.billed_seconds,
            cost=job.cost,
        )
    )
    if lost:
        start_waiting(job.service_id)
    return lost


def remove(client: DockerClient, container_id: str) -> None:
    _remove_quietly(client, container_id)


def resend_held_starts(batch: int = 500) -> int:
    """This host's supervisor has just taken the host's lock, so the process that held it before
    (if any) is gone, and with it every start message it held: prefetched or mid-start, unacked,
    and back in the queue only after the broker's visibility timeout. Send those jobs a new start
    message now, rather than after CLAIM_STALE and START_MESSAGE_LIVE: the pending jobs this host
    had claimed, and those whose message is out and claimed by nobody (it may be one the dead
    worker prefetched). A message that was not lost makes a second one, which a start skips
    (``claim`` and ``_create_or_get`` are idempotent). Returns how many were sent."""
    from jobs.launch import enqueue_start

    held = Job.objects.filter(
        Q(host=settings.RUNNER_HOST) | Q(host="", start_enqueued_at__isnull=False),
        status=JobStatus.PENDING,
    ).order_by("created_at")
    return sum(enqueue_start(job_id) for job_id in held.values_list("pk", flat=True)[:batch])


def sweep(batch: int = 100) -> dict:
    """The periodic reaper (beat): bounded batches, safe to run anywhere, any number of times.

    - pending jobs nobody holds and with no start message sent within START_MESSAGE_LIVE (it
      may be lost) get a new start message;
    - pending jobs older than JOB_START_TIMEOUT fail with ``startError``;
    - running jobs whose runner host stopped heart-beating for JOB_HOST_TIMEOUT fail.
    """
    from jobs.launch import enqueue_start
    from jobs.models import RunnerHost

    now = timezone.now()
    counts = {"requeued": 0, "timed_out": 0, "host_lost": 0}
    too_old = now - timedelta(seconds=settings.JOB_START_TIMEOUT)
    # A job waiting its turn for a slot of its service's max_concurrent_jobs counts from the
    # last time it was found waiting (Job.start_waits_since), not from its creation.
    stuck = Job.objects.filter(status=JobStatus.PENDING, created_at__lt=too_old).filter(
        Q(slot_waited_at__isnull=True) | Q(slot_waited_at__lt=too_old)
    )
    for job in stuck[:batch]:
        note = f": {job.note}" if job.note else ""
        limit = settings.JOB_START_TIMEOUT
        if fail_start(
            job.pk, f"the job could not start within JOB_START_TIMEOUT ({limit} s){note}"
        ):
            counts["timed_out"] += 1
    waiting = Job.objects.filter(
        Q(host="") | Q(claimed_at__lt=now - CLAIM_STALE),
        # One outstanding start message per job: none sent (or retried) recently.
        Q(start_enqueued_at__isnull=True) | Q(start_enqueued_at__lt=now - START_MESSAGE_LIVE),
        status=JobStatus.PENDING,
        created_at__lt=now - timedelta(seconds=5),
    ).order_by("created_at")
    for job_id in waiting.values_list("pk", flat=True)[:batch]:
        if enqueue_start(job_id):
            counts["requeued"] += 1
    host_timeout = timedelta(seconds=settings.JOB_HOST_TIMEOUT)
    alive = RunnerHost.objects.filter(last_seen_at__gte=now - host_timeout).values("name")
    orphans = (
        Job.objects.select_related("plan", "canceled_by")
        .filter(status=JobStatus.RUNNING, started_at__lt=now - host_timeout)
        .exclude(host__in=alive)
    )
    for job in orphans[:batch]:
        why = f"runner host {job.host or '?'} stopped answering (no heartbeat for {host_timeout})"
        if record_lost(job, why):
            counts["host_lost"] += 1
    return counts

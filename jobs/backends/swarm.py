"""JOB_BACKEND=swarm: a job is a Docker Swarm ``replicated-job`` service that Swarm places.

The worker whose engine is a swarm manager creates the service (start messages go to the
``swarm`` queue, which only such workers consume: config/celery.py): one task, restart condition
none, the plan's CPU and memory as both reservation and limit, the job's labels on its
container, no published ports and no networks. Swarm's scheduler puts the task on a node with
room; that node's worker's supervisor (jobs/supervisor.py) finds the container by its labels,
marks the job running (``runner.adopt``), follows its log, stops it on cancel or timeout and
records its exit from the container's own state, exactly as for the docker backend.

What only the manager can see is handled by ``ManagerPass``, which the manager's supervisor runs
on every pass: the capacity note of a task no node has room for, a task Swarm could not start
(no container ever ran), a cancel before the task's container started, a running job whose
node the manager reports ``down`` (host lost), and the removal of every service whose job is
recorded.

Creation order: at most one job at a time waits inside Swarm for room (the oldest); younger
jobs wait in the database with a note, and are handed to Swarm in creation order as room frees:
each manager pass hands over, oldest first, every queued job the nodes' unreserved CPU and memory
can hold, and the first that does not fit (it then waits inside Swarm, holding the rest back).
A job bigger than every node (it can run only on a node that joins later) waits without holding
the others up.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from docker import DockerClient, types
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from jobs import reasons, runner
from jobs.backends.base import Observation
from jobs.hosts import HOLDING
from jobs.models import FINISHED, Job, JobStatus
from jobs.runner import StartOutcome

logger = logging.getLogger(__name__)

CAPACITY_NOTE = "waiting for capacity"
# A start message a worker whose engine is not a manager took (the role moved, or a message went
# astray): the job waits, unclaimed, for the manager's pass to hand it over.
MANAGER_NOTE = "Waiting for a swarm manager"
UNPLACED = ("new", "pending")  # a task Swarm has not put on a node yet
NOT_STARTED = (*UNPLACED, "assigned", "accepted", "preparing", "ready")
ENDED_UNSTARTED = ("failed", "rejected", "orphaned", "remove", "shutdown")
PLACE_WAIT = 3.0  # seconds a start waits for Swarm's scheduler to place (or refuse) the task
HAND_OVER_BATCH = 64  # queued jobs a manager pass looks at (and may hand to Swarm) at most
MiB = 1024 * 1024
_managers: dict[str, tuple[float, bool]] = {}  # engine -> (when asked, is a manager)


def is_manager(client: DockerClient) -> bool:
    """Whether this engine is a swarm manager (asked at most every 10 s per engine)."""
    key = str(getattr(client.api, "base_url", ""))
    cached = _managers.get(key)
    if cached is not None and time.monotonic() - cached[0] < 10:
        return cached[1]
    swarm = client.info().get("Swarm") or {}
    answer = bool(swarm.get("ControlAvailable"))
    _managers[key] = (time.monotonic(), answer)
    return answer


def needs(job: Job) -> str:
    """A plan's size in words: "2 GB / 1 CPU"."""
    return f"{reasons.memory_words(job.plan.memory_mb)} / {Decimal(job.plan.cpu).normalize():f} CPU"


def image_reference(job: Job) -> str:
    """The image a node runs: the build's image in JOB_REGISTRY by digest, which a node that
    never built it pulls (``Build.job_image``); without a registry, the engine's image id, which
    only nodes that have the image can run."""
    return job.build.job_image


def task_template(job: Job) -> types.TaskTemplate:
    """Today's hardening (runner.container_config) as far as Swarm expresses it; README,
    "Jobs on Docker Swarm", lists what it cannot (no-new-privileges, memory+swap, a bounded
    writable layer, network mode none, tmpfs mount options)."""
    nano_cpus, memory = wants(job)
    read_only = settings.JOB_DISK_MODE != "off"
    mounts = []
    if read_only:  # Swarm cannot bound a writable layer: read-only root, tmpfs scratch
        mounts = [
            types.Mount(
                target,
                None,
                type="tmpfs",
                tmpfs_size=runner.scratch_mb(job) * MiB,
                tmpfs_mode=0o1777,
            )
            for target in settings.JOB_SCRATCH_DIRS
        ]
    spec = types.ContainerSpec(
        image=image_reference(job),
        command=["/bin/sh", "-c", job.start_command],
        env=[f"{key}={value}" for key, value in job.env_snapshot.values.items()],
        labels={
            runner.LABEL_INSTANCE: settings.ONEOFF_INSTANCE,
            runner.LABEL_JOB: job.id,
            runner.LABEL_SERVICE: job.service_id,
            runner.LABEL_WORKSPACE: job.workspace_id,
        },
        user=settings.JOB_USER or None,
        read_only=read_only,
        init=True,
        cap_drop=["ALL"],
        cap_add=list(settings.JOB_CAP_ADD) or None,
        mounts=mounts,
        stop_grace_period=settings.JOB_STOP_GRACE * 1_000_000_000,
    )
    resources = types.Resources(
        cpu_limit=nano_cpus,
        mem_limit=memory,
        cpu_reservation=nano_cpus,
        mem_reservation=memory,
    )
    resources["Limits"]["Pids"] = settings.JOB_PIDS_LIMIT  # API 1.41
    log = runner.log_config()
    networks = None
    if settings.JOB_NETWORK == "host":
        networks = [types.NetworkAttachmentConfig("host")]
    return types.TaskTemplate(
        spec,
        resources=resources,
        restart_policy=types.RestartPolicy(condition="none", max_attempts=0),
        log_driver=types.DriverConfig(log.type, log.config),
        networks=networks,
    )


@dataclass
class Task:
    """A job's swarm service and its (one) task, as the manager reports them."""

    service_id: str
    job_id: str
    state: str = ""  # "" before Swarm made the task
    err: str = ""
    node_id: str = ""
    container_id: str = ""
    exit_code: int | None = None
    created_at: str = ""


@dataclass
class Node:
    id: str
    hostname: str
    state: str  # ready, down, unknown, disconnected
    availability: str  # active, pause, drain
    nano_cpus: int
    memory: int


class Cluster:
    """One look at this installation's services, their tasks and the nodes (three API calls)."""

    def __init__(self, client: DockerClient) -> None:
        label = f"{runner.LABEL_INSTANCE}={settings.ONEOFF_INSTANCE}"
        services = client.api.services(filters={"label": label})
        self.tasks: dict[str, Task] = {}
        by_service: dict[str, Task] = {}
        for service in services:
            job_id = (service["Spec"].get("Labels") or {}).get(runner.LABEL_JOB)
            if job_id and service["Spec"].get("Name") == Job(id=job_id).container_name:
                by_service[service["ID"]] = self.tasks[job_id] = Task(service["ID"], job_id)
        if by_service:
            for item in client.api.tasks(filters={"service": list(by_service)}):
                task = by_service.get(item.get("ServiceID", ""))
                # A service may list an older task too (a replaced one): keep the newest.
                if task is None or item.get("CreatedAt", "") < task.created_at:
                    continue
                status = item.get("Status") or {}
                container = status.get("ContainerStatus") or {}
                task.state = status.get("State", "")
                task.err = status.get("Err", "")
                task.node_id = item.get("NodeID", "")
                task.container_id = container.get("ContainerID", "")
                task.exit_code = container.get("ExitCode")
                task.created_at = item.get("CreatedAt", "")
        self.nodes = {
            item["ID"]: Node(
                item["ID"],
                (item.get("Description") or {}).get("Hostname", item["ID"]),
                (item.get("Status") or {}).get("State", "unknown"),
                (item.get("Spec") or {}).get("Availability", "active"),
                ((item.get("Description") or {}).get("Resources") or {}).get("NanoCPUs", 0),
                ((item.get("Description") or {}).get("Resources") or {}).get("MemoryBytes", 0),
            )
            for item in client.api.nodes()
        }

    def fits_some_node(self, job: Job) -> bool:
        """Whether a ready, active node is big enough for the job when empty."""
        cpus, memory = wants(job)
        return any(
            n.state == "ready"
            and n.availability == "active"
            and n.memory >= memory
            and n.nano_cpus >= cpus
            for n in self.nodes.values()
        )

    def free_room(self, client: DockerClient) -> dict[str, list[int]]:
        """Each ready, active node's unreserved [nano CPUs, memory bytes]: its total less the
        reservations of every task holding them (this installation's or not), which is what
        Swarm's scheduler places by. One more API call (every task of the swarm)."""
        free = {
            n.id: [n.nano_cpus, n.memory]
            for n in self.nodes.values()
            if n.state == "ready" and n.availability == "active"
        }
        for task in client.api.tasks():
            room = free.get(task.get("NodeID", ""))
            if room is None or (task.get("Status") or {}).get("State") not in HOLDING:
                continue
            reserved = ((task.get("Spec") or {}).get("Resources") or {}).get("Reservations") or {}
            room[0] -= reserved.get("NanoCPUs", 0)
            room[1] -= reserved.get("MemoryBytes", 0)
        return free

    def largest(self) -> str:
        nodes = [
            n for n in self.nodes.values() if n.state == "ready" and n.availability == "active"
        ]
        if not nodes:
            return "no node is ready and active"
        big = max(nodes, key=lambda n: (n.memory, n.nano_cpus))
        return f"the largest node has {big.memory // MiB} MB / {big.nano_cpus / 1e9:g} CPU"

    def waiting_in_swarm(self, jobs: dict[str, Job], besides: str = "") -> list[str]:
        """Jobs whose task waits for room inside Swarm (unplaced, and some node could hold
        them): they keep younger jobs out of Swarm, so that room goes in creation order."""
        return [
            job_id
            for job_id, task in self.tasks.items()
            if job_id != besides
            and task.state in ("", *UNPLACED)
            and job_id in jobs
            and jobs[job_id].status == JobStatus.PENDING
            and self.fits_some_node(jobs[job_id])
        ]


def wants(job: Job) -> tuple[int, int]:
    """The job's plan as Swarm reserves it: nano CPUs and memory bytes."""
    return int(job.plan.cpu * 1_000_000_000), job.plan.memory_mb * MiB


def capacity_note(job: Job, why: str) -> str:
    return f"{CAPACITY_NOTE}: needs {needs(job)} — {why}"[:500]


def _admission_lock() -> None:
    """One admission at a time across every manager worker (PostgreSQL advisory lock, held
    until the transaction ends)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["oneoff-swarm-admission"])


class SwarmBackend:
    name = "swarm"

    def __init__(self, client: DockerClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> DockerClient:
        return self._client or runner.get_client()

    # --- start ---------------------------------------------------------------------------------

    def start(self, job_id: str) -> StartOutcome:
        try:
            client = self.client
            if not is_manager(client):
                note = (
                    f"{MANAGER_NOTE}: the engine of {settings.RUNNER_HOST} is not one (start "
                    "messages go to the swarm queue, which manager workers consume)"
                )
                Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(note=note[:500])
                return StartOutcome.WAITING
        except (DockerException, OSError) as exc:
            runner.reset_client()
            Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(
                note=f"Waiting for the Docker Engine on {settings.RUNNER_HOST}: {exc}"[:500]
            )
            return StartOutcome.WAITING
        return self._claimed(client, job_id, self._admit)

    def hand_over(self, client: DockerClient, job_id: str) -> StartOutcome:
        """The manager pass's start of a queued job whose turn it is (it found room for it, or
        it is the oldest): no queue checks, no wait for Swarm's placement."""
        return self._claimed(client, job_id, self._create)

    def _claimed(
        self,
        client: DockerClient,
        job_id: str,
        step: Callable[[DockerClient, Job], StartOutcome],
    ) -> StartOutcome:
        """Claim the job (``runner.prepare_start``), then run ``step`` on it (admit it, or
        create its service) under the admission lock."""
        job = runner.prepare_start(job_id, lambda job: self._cancel_unstarted(client, job))
        if isinstance(job, StartOutcome):
            return job
        if not job.build.image_id:
            runner.fail_start(job_id, f"build {job.build_id} has no image")
            return StartOutcome.FAILED
        try:
            with transaction.atomic():
                _admission_lock()
                return step(client, job)
        except (DockerException, OSError) as exc:
            return runner._wait_for_docker(job_id, exc, keep_claim=True)

    def _admit(self, client: DockerClient, job: Job) -> StartOutcome:
        cluster = Cluster(client)
        if job.pk in cluster.tasks:  # an earlier delivery made it: Swarm has it
            return StartOutcome.SKIPPED
        earlier = Q(created_at__lt=job.created_at) | Q(created_at=job.created_at, pk__lt=job.pk)
        queued = (
            Job.objects.filter(earlier, status=JobStatus.PENDING, claimed_at__isnull=True)
            .filter(note__startswith=CAPACITY_NOTE, cancel_requested_at__isnull=True)
            .count()
        )
        # Older jobs whose start is under way elsewhere (claimed, not handed to Swarm yet): two
        # starts racing for the lock must not reverse their order.
        in_flight = (
            Job.objects.filter(earlier, status=JobStatus.PENDING, cancel_requested_at__isnull=True)
            .filter(claimed_at__gte=timezone.now() - runner.CLAIM_STALE)
            .exclude(pk__in=list(cluster.tasks))
            .count()
        )
        pending = Job.objects.select_related("plan").in_bulk(list(cluster.tasks))
        waiting = cluster.waiting_in_swarm(pending, besides=job.pk)
        if (queued or waiting or in_flight) and cluster.fits_some_node(job):
            ahead = queued + len(waiting) + in_flight
            note = capacity_note(
                job,
                f"{ahead} job{'s' if ahead != 1 else ''} created before this one "
                f"wait{'s' if ahead == 1 else ''} for room first",
            )
            Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
                claimed_at=None, host="", note=note, slot_waited_at=timezone.now()
            )
            return StartOutcome.QUEUED
        outcome = self._create(client, job)
        if outcome != StartOutcome.STARTED:
            return outcome
        # Wait for the scheduler's answer, so that the next admission sees this task placed or
        # waiting (and room goes in creation order).
        deadline = time.monotonic() + PLACE_WAIT
        while time.monotonic() < deadline:
            task = Cluster(client).tasks.get(job.pk)
            if task is not None and (task.state not in ("", *UNPLACED) or task.err):
                if task.state in UNPLACED and task.err:
                    self._note_capacity(job, task, cluster)
                break
            time.sleep(0.03)
        return StartOutcome.STARTED

    def _create(self, client: DockerClient, job: Job) -> StartOutcome:
        """Hand the claimed job to Swarm: its replicated-job service."""
        try:
            client.api.create_service(
                task_template(job),
                name=job.container_name,
                labels={runner.LABEL_INSTANCE: settings.ONEOFF_INSTANCE, runner.LABEL_JOB: job.pk},
                mode=types.ServiceMode("replicated-job"),
            )
        except ImageNotFound as exc:
            runner.fail_start(job.pk, f"the build's image is gone: {runner._explain(exc)}")
            return StartOutcome.FAILED
        except APIError as exc:
            if exc.status_code == 409:
                return StartOutcome.SKIPPED
            runner.fail_start(
                job.pk, f"Swarm could not create the job's service: {runner._explain(exc)}"
            )
            return StartOutcome.FAILED
        logger.info("job %s handed to Swarm (%s)", job.pk, needs(job))
        return StartOutcome.STARTED

    def _note_capacity(self, job: Job, task: Task, cluster: Cluster) -> None:
        why = task.err
        if not cluster.fits_some_node(job):
            why = f"{why}; no node is that big ({cluster.largest()})"
        Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
            note=capacity_note(job, why), slot_waited_at=timezone.now()
        )

    def _cancel_unstarted(self, client: DockerClient, job: Job) -> StartOutcome:
        """A claimed pending job asked to cancel: remove its service unless its container has
        started (then the supervisor of its node adopts, stops and bills it)."""
        try:
            cluster = Cluster(client)
            task = cluster.tasks.get(job.pk)
            if task is not None and task.state not in (*NOT_STARTED, "") and task.container_id:
                return StartOutcome.SKIPPED
            if task is not None:
                _remove_service(client, task.service_id)
        except (DockerException, OSError) as exc:
            return runner._wait_for_docker(job.pk, exc, keep_claim=True)
        runner.cancel_unstarted(job.pk)
        return StartOutcome.SKIPPED

    # --- the rest of the interface -------------------------------------------------------------

    def stop(self, job: Job) -> bool:
        """Swarm can stop a task only by removing its service, which also removes the container
        (and its exit state) before anyone read them: a started job's container is stopped by
        its node's supervisor, through its own engine (today's code). This stops only a job
        whose container has not started: its service goes."""
        task = Cluster(self.client).tasks.get(job.pk)
        if task is None or (task.state not in NOT_STARTED and task.container_id):
            return False
        _remove_service(self.client, task.service_id)
        return True

    def observe(self, job: Job) -> Observation:
        cluster = Cluster(self.client)
        task = cluster.tasks.get(job.pk)
        if task is None:
            return Observation("absent")
        node = cluster.nodes.get(task.node_id)
        host = node.hostname if node else ""
        lost = ""
        if node is not None and node.state == "down" and task.state not in ("complete", "failed"):
            lost = reasons.host_lost_text(host, "the swarm manager reports its node down")
        raw = {"state": task.state, "err": task.err, "node": task.node_id}
        if task.state in ("", *NOT_STARTED):
            note = task.err and capacity_note(job, task.err) if task.state in UNPLACED else ""
            return Observation("waiting", note=note or "", host=host, lost=lost, raw=raw)
        if task.state in ("starting", "running"):
            return Observation("running", host=host, lost=lost, raw=raw)
        return Observation(
            "exited", exit_code=task.exit_code, note=task.err, host=host, lost=lost, raw=raw
        )

    def remove(self, job: Job) -> None:
        task = Cluster(self.client).tasks.get(job.pk)
        if task is not None:
            _remove_service(self.client, task.service_id)


def _remove_service(client: DockerClient, service_id: str) -> None:
    with contextlib.suppress(NotFound):
        client.api.remove_service(service_id)


class ManagerPass:
    """What only a swarm manager sees, once per supervisor pass on a manager's worker."""

    REFRESH_EVERY = 30.0  # seconds between refreshes of queued jobs' ``slot_waited_at``

    def __init__(self) -> None:
        self.last_refresh = 0.0
        self.backend = SwarmBackend()

    def run(self, client: DockerClient) -> None:
        if not is_manager(client):
            return
        cluster = Cluster(client)
        jobs = Job.objects.select_related("plan", "canceled_by").in_bulk(list(cluster.tasks))
        for job_id, task in cluster.tasks.items():
            try:
                self._one(client, cluster, task, jobs.get(job_id))
            except (DockerException, OSError) as exc:
                logger.warning("swarm: job %s: Docker error %r", job_id, exc)
        self._hand_over_queued(client, cluster, jobs)
        now = time.monotonic()
        if now - self.last_refresh >= self.REFRESH_EVERY:
            self.last_refresh = now
            # Waiting one's turn for room is not a start that failed: JOB_START_TIMEOUT counts
            # from the last time a job was seen waiting (Job.start_waits_since).
            Job.objects.filter(status=JobStatus.PENDING, note__startswith=CAPACITY_NOTE).update(
                slot_waited_at=timezone.now()
            )

    def _one(self, client: DockerClient, cluster: Cluster, task: Task, job: Job | None) -> None:
        if job is None or job.status in FINISHED:
            _remove_service(client, task.service_id)
            return
        node = cluster.nodes.get(task.node_id)
        if job.status == JobStatus.RUNNING:
            if node is not None and node.state == "down":
                why = reasons.host_lost_text(
                    job.host or node.hostname,
                    f"the swarm manager reports node {node.hostname} down",
                )
                if runner.record_lost(job, why):
                    logger.warning("job %s: %s", job.pk, why)
                    _remove_service(client, task.service_id)
            return
        # Pending.
        started = task.state not in ("", *NOT_STARTED) and bool(task.container_id)
        if job.cancel_requested_at is not None and not started:
            _remove_service(client, task.service_id)
            runner.cancel_unstarted(job.pk)
        elif task.state in ENDED_UNSTARTED and not task.container_id:
            why = f"Swarm could not run the job's task ({task.state}): {task.err or '?'}"
            if runner.fail_start(job.pk, why):
                _remove_service(client, task.service_id)
        elif task.state in UNPLACED and task.err:
            why = task.err
            if not cluster.fits_some_node(job):
                why = f"{why}; no node is that big ({cluster.largest()})"
            note = capacity_note(job, why)
            if job.note != note:
                Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
                    note=note, slot_waited_at=timezone.now()
                )
        elif task.state not in ("", *UNPLACED) and job.note.startswith(CAPACITY_NOTE):
            where = node.hostname if node else "a node"
            Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
                note=f"placed on {where}, starting"
            )

    def _hand_over_queued(
        self, client: DockerClient, cluster: Cluster, jobs: dict[str, Job]
    ) -> None:
        """No job waits inside Swarm for room: hand it the queued jobs (and those whose start
        message a worker that is not a manager took), oldest first, as long as the nodes'
        unreserved room holds them (each counted on the node with the most free memory that fits
        it, as Swarm's spread would), then the first that does not fit, which waits inside Swarm
        and holds the younger ones back. A job bigger than every node is handed over without
        holding anyone up (it waits for a node that big to join)."""
        if cluster.waiting_in_swarm(jobs):
            return
        queued = list(
            Job.objects.filter(status=JobStatus.PENDING, claimed_at__isnull=True)
            .filter(Q(note__startswith=CAPACITY_NOTE) | Q(note__startswith=MANAGER_NOTE))
            .select_related("plan")
            .order_by("created_at", "id")[:HAND_OVER_BATCH]
        )
        if not queued:
            return
        room = cluster.free_room(client)
        for job in queued:
            last = False
            if job.cancel_requested_at is None and cluster.fits_some_node(job):
                cpus, memory = wants(job)
                fitting = [free for free in room.values() if free[0] >= cpus and free[1] >= memory]
                if fitting:
                    free = max(fitting, key=lambda free: free[1])
                    free[0] -= cpus
                    free[1] -= memory
                else:
                    last = True
            self.backend.hand_over(client, job.pk)
            if last:
                return

"""The per-host supervisor: follows every container of this installation on this host's engine.

It runs as a thread in the Celery worker's main process (a worker bootstep, see config/celery.py),
so a job's life never hangs on one Celery task staying acknowledged. Every ``interval`` it lists the
containers labelled ``oneoff.instance=<ONEOFF_INSTANCE>``, reads their jobs in one query, keeps only
the containers it knows by record (``runner.is_own``: the recorded id, or the job's name and build
image; a label alone, which any Dockerfile can set, is never enough), and:

- keeps one log follower per running job (jobs/logs/), which resumes from the job's cursor; the
  first one starts the moment the container runs (``follow_now``, called by ``runner.start``);
- stops a container whose job was asked to cancel, or ran past its timeout (its own
  ``timeoutSeconds``, else JOB_MAX_RUNTIME)
  (``docker stop``: SIGTERM, JOB_STOP_GRACE seconds, SIGKILL), in a thread of its own;
- once a container exited and its follower stored everything, records the exit (a
  compare-and-set on ``running``) and removes the container;
- removes containers whose job is already finished or gone;
- marks running jobs of this host whose container vanished ``failed`` with a reason;
- tells a container the engine stopped (an engine restart without live-restore kills every
  container with SIGTERM, then SIGKILL) from the job's own failure: a container that died by a
  signal while the engine did not answer ends ``failed`` with an ``evicted`` reason saying so,
  never ``nonZeroExit`` 137 or 143 (``_lost_to_engine``);
- with JOB_BACKEND=swarm, marks a job running as soon as the container Swarm placed on this
  engine runs (``runner.adopt``), and on a swarm manager runs ``jobs.backends.swarm.ManagerPass``
  (capacity notes, cancels before a task started, nodes down, services of recorded jobs);
- adopts a container whose start was not recorded (its ``start_job`` died between the Docker
  start and the database update), at once when the job was asked to cancel meanwhile, so that
  it is stopped, its logs stored and its time billed before it ends ``canceled``.

One supervisor per host and installation: a file lock (released by the kernel even on SIGKILL)
keeps a second worker on the same host waiting as a standby.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TextIO

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone
from docker import DockerClient
from docker.errors import DockerException, NotFound

from jobs import reasons, runner
from jobs.backends.swarm import ManagerPass
from jobs.logs.follow import LogFollower, open_from_start
from jobs.models import FINISHED, Job, JobStatus, RunnerHost
from jobs.usage import UsageSampler
from services.startup import freeze_startup_objects

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = 5.0
LOST_GRACE = timedelta(seconds=5)  # a running job's container may be missing this long at start
# A pending job asked to cancel whose container was created but not started this long after its
# claim: its start_job is not about to start it, the container is removed and the job canceled.
CANCEL_CREATED_AFTER = timedelta(seconds=5)
ANNOUNCED_FOR = 10.0  # seconds an announced start keeps the passes from following it themselves
OUTAGES_KEPT = 20  # engine outages remembered (the exits of a lost container are judged by them)
# Threads finishing starts (``launched``): an inspect and a row each, about 90 ms, for starts
# that come a few a second at most (each takes the engine half a second, four at a time).
LAUNCH_THREADS = 2
# A container killed (exit 137) without OOMKilled has its exit recorded once it ended this long
# ago; until then the passes look again (``Supervisor._exit_state``).
OOM_SETTLE = timedelta(seconds=1)
OUTAGE_SLACK = timedelta(seconds=2)  # the engine's clock and ours, and a listing's own time


class Supervisor(threading.Thread):
    def __init__(
        self,
        interval: float = 0.5,
        client_factory: Callable[[], DockerClient] = runner.new_client,
    ) -> None:
        super().__init__(name="oneoff-supervisor", daemon=True)
        self.interval = interval
        self.client_factory = client_factory
        self.client: DockerClient | None = None
        self.followers: dict[str, LogFollower] = {}
        self.stoppers: dict[str, threading.Thread] = {}
        self.stopped = threading.Event()
        self.last_heartbeat = 0.0
        self.docker_ok = False
        self.docker_error = ""
        # Engine outages this supervisor saw, as (last good listing, first good listing after);
        # ``down_since`` while one lasts. Times are wall-clock, to compare with Docker's.
        self.last_listing = timezone.now()
        self.down_since: datetime | None = None
        self.outages: list[tuple[datetime, datetime]] = []
        self.lock_file: TextIO | None = None
        # Removing a container takes tens of milliseconds: never hold up the loop with it.
        self.removals = ThreadPoolExecutor(4, thread_name_prefix="oneoff-remove")
        # The end of each start this process's start_job threads hand over (``launched``), for
        # threads of its own while it is active (None ends one).
        self.launches: queue.SimpleQueue[tuple[Job, str] | None] = queue.SimpleQueue()
        self.launchers: list[threading.Thread] = []
        self.launch_lock = threading.Lock()
        self.removing: set[str] = set()
        # Followers started by follow_now (another thread) for the next tick to take over, and
        # jobs whose start is announced (``starting``): no pass starts a follower of its own
        # for them meanwhile.
        self.handoff: dict[str, LogFollower] = {}
        self.announced: dict[str, float] = {}
        self.handoff_lock = threading.Lock()
        self.active = False  # holds the host's lock (a standby follows nothing)
        self.database_down_since: float | None = None  # monotonic time of an outage's start
        # What each running job uses (jobs/usage.py): a thread of its own, off the ingest path.
        self.usage = UsageSampler(client_factory)
        # JOB_BACKEND=swarm: what only a swarm manager sees (it does nothing on other engines).
        self.swarm: ManagerPass | None = ManagerPass() if settings.JOB_BACKEND == "swarm" else None

    # --- life ----------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if not self._acquire_lock():
                return
            self.launchers = [
                threading.Thread(target=self._launcher, name=f"oneoff-launch-{n}", daemon=True)
                for n in range(LAUNCH_THREADS)
            ]
            for thread in self.launchers:
                thread.start()
            self.active = True
            self.usage.start()
            logger.info(
                "oneoff supervisor running on %s for instance %s",
                settings.RUNNER_HOST,
                settings.ONEOFF_INSTANCE,
            )
            resent = False
            while not self.stopped.is_set():
                started = time.monotonic()
                try:
                    if not resent:
                        self._resend_held_starts()
                        resent = True
                    self.tick()
                    self._database_answers()
                except DatabaseError as exc:
                    self._database_down(exc)
                    connection.close()
                except Exception:
                    logger.exception("supervisor tick failed")
                    connection.close()
                self.stopped.wait(max(0.05, self.interval - (time.monotonic() - started)))
        finally:
            with self.launch_lock:
                self.active = False  # launched hands nothing over from now on
                for _ in self.launchers:
                    self.launches.put(None)
            for thread in self.launchers:
                thread.join()  # what was handed over is finished (its follow_now declines)
            with self.handoff_lock:
                handed, self.handoff = self.handoff, {}
            for follower in [*self.followers.values(), *handed.values()]:
                follower.stop()
            self.usage.stop()
            self.removals.shutdown(wait=True)
            connection.close()

    def _resend_held_starts(self) -> None:
        sent = runner.resend_held_starts()
        if sent:
            logger.info("sent %d start message(s) again (the last worker may have held them)", sent)

    def _database_down(self, exc: DatabaseError) -> None:
        """One line per database outage, not a traceback every pass."""
        if self.database_down_since is None:
            self.database_down_since = time.monotonic()
            logger.warning("the database does not answer (the supervisor waits for it): %s", exc)

    def _database_answers(self) -> None:
        if self.database_down_since is not None:
            down = time.monotonic() - self.database_down_since
            self.database_down_since = None
            logger.warning("the database answers again (after %.0f s)", down)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped.set()
        self.join(timeout)

    def _acquire_lock(self) -> bool:
        path = (
            settings.VAR_DIR / f"supervisor-{settings.ONEOFF_INSTANCE}-{settings.RUNNER_HOST}.lock"
        )
        self.lock_file = open(path, "a+")  # noqa: SIM115 - held for the thread's life
        announced = False
        while not self.stopped.is_set():
            try:
                fcntl.flock(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if not announced:
                    logger.info("another supervisor holds %s; standing by", path)
                    announced = True
                self.stopped.wait(1.0)
        return False

    def starting(self, job_id: str) -> None:
        """``runner.on_starting``: a job's container runs and ``follow_now`` will follow it."""
        with self.handoff_lock:
            self.announced[job_id] = time.monotonic()

    def launched(self, job: Job, container_id: str) -> bool:
        """``runner.on_launched``: finish the start of ``job``, whose container now runs, on one
        of this supervisor's threads (``runner.mark_running``), so that the start_job thread
        goes on to the next job. False when this supervisor follows nothing (a standby, or
        stopping): the start_job thread finishes the start itself."""
        with self.launch_lock:
            if not self.active or self.stopped.is_set():
                return False
            self.launches.put((job, container_id))
        return True

    def _launcher(self) -> None:
        try:
            while (launch := self.launches.get()) is not None:
                self._mark_running(*launch)
        finally:
            connection.close()

    def _mark_running(self, job: Job, container_id: str) -> None:
        try:
            runner.mark_running(job, runner.get_client(), container_id)
        except DatabaseError as exc:
            # The row stays pending with its claim: this supervisor adopts the running
            # container once the claim is stale (``_handle_pending``).
            logger.warning("job %s: database error marking it running: %s", job.pk, exc)
            connection.close()
        except Exception:
            logger.exception("finishing the start of %s", job.pk)

    def follow_now(self, job_id: str, client: DockerClient, attrs: dict) -> None:
        """Start following a job's log the moment its container runs (``runner.on_started``, in
        the thread that finished its start), not at the next pass: Docker rotates a job's
        on-host log (``runner.log_config``), and a job printing flat out from its first
        millisecond could otherwise have a small log's first pieces rotated away before anyone
        read them."""
        if not self.active or self.stopped.is_set():
            with self.handoff_lock:
                self.announced.pop(job_id, None)
            return
        files = open_from_start(client, attrs)  # here and now, before this thread goes on
        self.usage.watch(job_id, attrs["Id"], pid=(attrs.get("State") or {}).get("Pid"))
        follower = LogFollower(job_id, attrs["Id"], self.client_factory, files=files)
        try:
            follower.start()
        except BaseException:
            if files is not None:
                files.close()
            raise
        with self.handoff_lock:
            replaced = self.handoff.pop(job_id, None)
            self.handoff[job_id] = follower
            self.announced.pop(job_id, None)
        if replaced is not None:
            replaced.stop()

    # --- one pass ------------------------------------------------------------------------------

    def _take_handoff(self) -> None:
        with self.handoff_lock:
            handed, self.handoff = self.handoff, {}
            stale = time.monotonic() - ANNOUNCED_FOR
            for job_id in [j for j, at in self.announced.items() if at < stale]:
                del self.announced[job_id]  # a start that did not go through
        for job_id, follower in handed.items():
            current = self.followers.get(job_id)
            if current is not None and (current.is_alive() or current.done):
                follower.stop()  # one follower a job; the writer's cursor check keeps it so
            else:
                self.followers[job_id] = follower

    def _announced(self) -> set[str]:
        """Jobs follow_now has taken (or is taking) from their start: the sampler keeps them."""
        with self.handoff_lock:
            return set(self.handoff) | set(self.announced)

    def _handed_over(self, job_id: str) -> bool:
        with self.handoff_lock:
            return job_id in self.handoff or job_id in self.announced

    def tick(self) -> None:
        close_old_connections()
        self._take_handoff()
        containers = self._list_containers()
        self._heartbeat()
        if containers is None:
            return
        labelled: dict[str, list[dict]] = {}
        for item in containers:
            job_id = (item.get("Labels") or {}).get(runner.LABEL_JOB)
            if job_id:
                labelled.setdefault(job_id, []).append(item)
        jobs = Job.objects.select_related("plan", "canceled_by", "build").in_bulk(list(labelled))
        by_job: dict[str, dict] = {}
        for job_id, items in labelled.items():
            own = [item for item in items if runner.is_own(job_id, jobs.get(job_id), item)]
            if own:
                by_job[job_id] = own[0]
        for job_id, item in by_job.items():
            try:
                self.handle(job_id, item, jobs.get(job_id))
            except (DockerException, OSError) as exc:
                logger.warning("supervising %s: Docker error %r", job_id, exc)
        self._find_lost(set(by_job))
        running = {j for j, job in jobs.items() if job.status == JobStatus.RUNNING and j in by_job}
        self.usage.keep_only(running | self._announced())
        for job_id in [j for j in self.followers if j not in by_job]:
            self.followers.pop(job_id).stop()
        if self.swarm is not None:
            assert self.client is not None  # tick listed the containers with it
            try:
                self.swarm.run(self.client)
            except (DockerException, OSError) as exc:
                logger.warning("swarm manager pass: Docker error %r", exc)

    def _list_containers(self) -> list[dict] | None:
        try:
            if self.client is None:
                self.client = self.client_factory()
            containers = self.client.api.containers(all=True, filters=runner.instance_filter())
            self.docker_ok, self.docker_error = True, ""
            self._engine_answered()
            return containers
        except (DockerException, OSError) as exc:
            if self.docker_ok or not self.docker_error:
                logger.warning("the Docker Engine does not answer: %s", exc)
            self.docker_ok, self.docker_error = False, str(exc)[:1000]
            if self.down_since is None:
                self.down_since = self.last_listing
            if self.client is not None:
                try:
                    self.client.close()
                except Exception:
                    logger.debug("closing the Docker client", exc_info=True)
            self.client = None
            return None

    def _engine_answered(self) -> None:
        now = timezone.now()
        if self.down_since is not None:
            self.outages = [*self.outages, (self.down_since, now)][-OUTAGES_KEPT:]
            logger.warning(
                "the Docker Engine answers again (it did not for %.1f s)",
                (now - self.down_since).total_seconds(),
            )
            self.down_since = None
        self.last_listing = now

    def _lost_to_engine(self, state: dict) -> str:
        """Why a container died with its engine ("" when it did not): killed by a signal (exit
        128+n, or 255 when the engine lost track of it) at a time the engine did not answer.
        An engine that stops without live-restore stops its containers (SIGTERM, then SIGKILL
        after their stop timeout) after it closed its API, so this supervisor saw the outage."""
        code = state.get("ExitCode")
        finished = runner.docker_time(state.get("FinishedAt"))
        if not isinstance(code, int) or code < 128 or finished is None or state.get("OOMKilled"):
            return ""
        for down, back in self.outages:
            if down - OUTAGE_SLACK <= finished <= back + OUTAGE_SLACK:
                return reasons.engine_lost_text(settings.RUNNER_HOST, code)
        return ""

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self.last_heartbeat < HEARTBEAT_EVERY:
            return
        self.last_heartbeat = now
        RunnerHost.seen(
            settings.RUNNER_HOST, docker_ok=self.docker_ok, docker_error=self.docker_error
        )

    def handle(self, job_id: str, item: dict, job: Job | None) -> None:
        state = item.get("State")
        container_id = item["Id"]
        if job is None or job.status in FINISHED:
            # Finished (or deleted) jobs keep no container; a running one is killed first.
            follower = self.followers.pop(job_id, None)
            if follower is not None:
                follower.stop()
            self._remove(container_id)
            return
        if job.status == JobStatus.PENDING:
            self._handle_pending(job, item)
            return
        # Running.
        follower = self.followers.get(job_id)
        if follower is None and self._handed_over(job_id):
            return  # follow_now follows it; the next pass takes that follower over
        if follower is None or (not follower.is_alive() and not follower.done):
            self.followers[job_id] = follower = LogFollower(
                job_id, container_id, self.client_factory
            )
            follower.start()
        if state == "running":
            self.usage.watch(job_id, container_id)
            if follower.done:
                # The stream ended while the container runs (engine restart?): follow again.
                self.followers[job_id] = follower = LogFollower(
                    job_id, container_id, self.client_factory
                )
                follower.start()
            # The job's own timeoutSeconds, or JOB_MAX_RUNTIME (Job.runtime_limit).
            max_runtime = timedelta(seconds=job.runtime_limit)
            too_long = job.started_at and timezone.now() - job.started_at >= max_runtime
            if job.cancel_requested_at is not None or too_long:
                self._stop_job(job_id, container_id)
        elif state in ("exited", "dead") and follower.done:
            assert self.client is not None  # tick listed the containers with it
            attrs = self._exit_state(container_id, job)
            if attrs is None:
                return  # the engine may still say it was for memory: the next pass looks again
            why = self._lost_to_engine(attrs["State"])
            used = self.usage.finish(
                job_id,
                oom_killed=bool(attrs["State"].get("OOMKilled")),
                memory_limit_mb=job.plan.memory_mb,
            )
            if not why:
                runner.record_exit(job, attrs["State"], used)  # logs the end when it records it
            elif runner.record_lost(job, why):
                logger.warning("job %s: %s", job_id, why)
            self.followers.pop(job_id, None)
            self.stoppers.pop(job_id, None)
            self._remove(container_id)

    def _exit_state(self, container_id: str, job: Job) -> dict | None:
        """The exited container's inspect, or None while its exit may not be final: killed (exit
        137) less than OOM_SETTLE ago without the engine saying it was for memory. The engine
        records the kernel's OOM kill from an event of its own, which can come a moment after
        the exit (a job of an 8 MB plan ended ``nonZeroExit: 137`` instead of ``oomKilled`` in
        CI). The pass never waits for it: a job that exits 137 on purpose delays only its own
        end, never another's (the first fix slept here, 0.3 s a job, on the one loop)."""
        assert self.client is not None  # tick listed the containers with it
        attrs = self.client.api.inspect_container(container_id)
        state = attrs["State"]
        if state.get("ExitCode") != 137 or state.get("OOMKilled"):
            return attrs
        if job.cancel_requested_at is not None:
            return attrs  # stopped on request: the cancel is its reason whatever the engine says
        finished = runner.docker_time(state.get("FinishedAt"))
        if finished is not None and timezone.now() - finished < OOM_SETTLE:
            return None
        return attrs

    def _handle_pending(self, job: Job, item: dict) -> None:
        if runner.is_swarm_task(job.container_name, item):
            # JOB_BACKEND=swarm: Swarm made and starts this container; the manager's start
            # recorded nothing of it. Running (or already over): the job runs here, now.
            if item.get("State") in ("running", "exited", "dead"):
                assert self.client is not None  # tick listed the containers with it
                attrs = self.client.api.inspect_container(item["Id"])
                if runner.adopt(job, attrs):
                    logger.info("job %s started on %s (swarm task)", job.id, settings.RUNNER_HOST)
            return
        claimed_at = job.claimed_at or job.created_at
        since_claim = timezone.now() - claimed_at
        canceling = job.cancel_requested_at is not None
        if since_claim < runner.CLAIM_STALE / 2 and not canceling:
            return  # start_job is (probably) still at work on it
        assert self.client is not None  # tick listed the containers with it
        if item.get("State") in ("running", "exited", "dead"):
            # Asked to cancel: adopted at once, so that the running-job path stops it, stores
            # its logs and bills it before it ends canceled (adopting is a compare-and-set that
            # a start_job still at work on it respects).
            attrs = self.client.api.inspect_container(item["Id"])
            if runner.adopt(job, attrs):
                logger.info("adopted container of %s whose start was not recorded", job.id)
        elif not canceling or since_claim >= CANCEL_CREATED_AFTER:
            # Created but never started: remove it and let start_job (via the sweep) try again,
            # or, asked to cancel, end the job (it never ran).
            runner.remove(self.client, item["Id"])
            if canceling:
                runner.cancel_unstarted(job.pk)
            else:
                Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
                    host="", claimed_at=None
                )

    def _remove(self, container_id: str) -> None:
        if container_id in self.removing:
            return
        self.removing.add(container_id)

        def remove() -> None:
            try:
                runner.remove(runner.get_client(), container_id)
            finally:
                self.removing.discard(container_id)

        self.removals.submit(remove)

    def _stop_job(self, job_id: str, container_id: str) -> None:
        thread = self.stoppers.get(job_id)
        if thread is not None and thread.is_alive():
            return
        thread = threading.Thread(
            target=self._stop_container, args=(container_id,), name=f"stop-{job_id}", daemon=True
        )
        self.stoppers[job_id] = thread
        thread.start()

    def _stop_container(self, container_id: str) -> None:
        grace = settings.JOB_STOP_GRACE
        try:
            client = runner.new_client(timeout=grace + runner.DOCKER_TIMEOUT)
            try:
                client.api.stop(container_id, timeout=grace)
            finally:
                client.close()
        except NotFound:
            pass
        except (DockerException, OSError):
            logger.warning("could not stop container %s", container_id, exc_info=True)

    def _find_lost(self, seen: set[str]) -> None:
        cutoff = timezone.now() - LOST_GRACE
        candidates = (
            Job.objects.select_related("plan", "canceled_by")
            .filter(status=JobStatus.RUNNING, host=settings.RUNNER_HOST, started_at__lt=cutoff)
            .exclude(pk__in=seen)[:100]
        )
        assert self.client is not None  # tick listed the containers with it
        for job in candidates:
            try:
                self.client.api.inspect_container(job.container_id or job.container_name)
                continue  # it exists after all (started after the listing)
            except NotFound:
                pass
            follower = self.followers.pop(job.id, None)
            if follower is not None:
                follower.stop()
            why = (
                f"the job's container {job.container_name} disappeared from the Docker Engine "
                f"on {settings.RUNNER_HOST} (removed outside Oneoff?)"
            )
            if self.outages and job.started_at and job.started_at < self.outages[-1][1]:
                why = (
                    f"the job's container {job.container_name} was gone when the Docker Engine "
                    f"on {settings.RUNNER_HOST} came back from a restart"
                )
            if runner.record_lost(job, why):
                logger.warning("job %s: %s", job.id, why)


_supervisor: Supervisor | None = None


def start_supervisor() -> Supervisor | None:
    """Start this process's supervisor (once). ``ONEOFF_SUPERVISOR=0`` turns it off."""
    global _supervisor
    if os.environ.get("ONEOFF_SUPERVISOR", "1") == "0":
        return None
    if _supervisor is None or not _supervisor.is_alive():
        freeze_startup_objects()
        _supervisor = Supervisor(interval=float(os.environ.get("ONEOFF_SUPERVISOR_INTERVAL", 0.5)))
        _supervisor.start()
        runner.on_starting = _supervisor.starting
        runner.on_launched = _supervisor.launched
        runner.on_started = _supervisor.follow_now
    return _supervisor


def stop_supervisor() -> None:
    global _supervisor
    if _supervisor is not None:
        runner.on_starting = runner.on_launched = runner.on_started = None
        _supervisor.stop()
        _supervisor = None

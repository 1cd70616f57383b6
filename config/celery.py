"""The Celery app. Tasks live in each app's tasks.py and stay thin (logic in plain modules).

Two queues, each served by its own worker process with its own threads, so that no build can hold
up a job's start: ``jobs`` (the default: job starts, heartbeats, sweeps, purges) and ``builds``
(``run_build``, which may take up to BUILD_TIMEOUT, and image cleanup). ``celery -A config worker
-Q jobs`` runs WORKER_CONCURRENCY threads and the job supervisor; ``-Q builds`` runs
BUILD_WORKER_CONCURRENCY threads and no supervisor. A worker started without ``-Q`` serves both
queues on shared threads (as one worker did before the split): fine for a laptop, not for a
shared installation.
"""

import logging
import os
import sys

from celery import Celery, bootsteps, signals
from django.conf import settings
from django.db import close_old_connections
from kombu import Exchange, Queue

from config import broker  # noqa: F401 (names the Redis transport that CELERY_BROKER_TRANSPORT uses)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

JOBS_QUEUE = "jobs"
BUILDS_QUEUE = "builds"
# JOB_BACKEND=swarm: job starts go here, and only a jobs worker whose engine is a swarm manager
# consumes it (SwarmManagerQueue): only a manager can create the job's service. Not one of
# task_queues, so that a worker started without -Q never consumes it (Celery declares it from
# the route when a start is sent).
SWARM_QUEUE = "swarm"

app = Celery("oneoff")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Tasks are short and wait on Docker or the database, so threads serve them well; and the worker's
# main process runs the job supervisor's threads, which must not be forked into pool children.
app.conf.worker_pool = os.environ.get("CELERY_WORKER_POOL", "threads")

# Celery's Django fixup closes every database connection of a task's thread before and after
# each task (unless CELERY_DB_REUSE_MAX says otherwise): with the threads pool, every job start
# opened a new PostgreSQL connection (a backend forked, its catalog caches cold, no statement
# prepared), about a third of PostgreSQL's CPU with 100 jobs at once (``bench_runner.py --only
# throughput``). A task's connections are kept as a request's are instead (``_tasks_connections``):
# closed when they failed or are older than CONN_MAX_AGE, health-checked before their first use.
app.conf["CELERY_DB_REUSE_MAX"] = sys.maxsize

app.conf.task_queues = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name)
    for name in (JOBS_QUEUE, BUILDS_QUEUE)
)
app.conf.task_default_queue = JOBS_QUEUE
app.conf.task_routes = {
    "services.tasks.run_build": {"queue": BUILDS_QUEUE},
    "services.tasks.cleanup_images": {"queue": BUILDS_QUEUE},
}
if settings.JOB_BACKEND == "swarm":
    app.conf.task_routes["jobs.tasks.start_job"] = {"queue": SWARM_QUEUE}


@signals.task_prerun.connect
@signals.task_postrun.connect
def _tasks_connections(sender=None, **kwargs):
    """Before and after each task, what Django does around each request (``close_old_connections``):
    a connection that failed, or is older than CONN_MAX_AGE, is closed; the others are kept, and
    checked before their next use (CONN_HEALTH_CHECKS). Not for an eager task: it runs inside its
    caller's transaction."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    close_old_connections()


def consumes_only_builds(queues) -> bool:
    """Whether a worker consuming ``queues`` (names) is a builds-only worker."""
    return set(queues or ()) == {BUILDS_QUEUE}


@signals.celeryd_init.connect
def _concurrency_per_queue(sender=None, conf=None, options=None, **kwargs):
    """A worker's thread count comes from its queue: BUILD_WORKER_CONCURRENCY for ``-Q builds``,
    WORKER_CONCURRENCY otherwise; an explicit ``--concurrency`` wins."""
    options = options or {}
    if conf is None or options.get("concurrency"):
        return
    queues = options.get("queues")
    if isinstance(queues, str):
        queues = queues.split(",")
    conf.worker_concurrency = (
        settings.BUILD_WORKER_CONCURRENCY
        if consumes_only_builds(queues)
        else settings.WORKER_CONCURRENCY
    )


class JobSupervisorStep(bootsteps.StartStopStep):
    """Runs jobs.supervisor in every worker that serves the jobs queue (one per host is active;
    the others stand by): it follows this host's job containers, their logs, cancels, timeouts
    and exits. A builds-only worker has no supervisor."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.supervising = False

    def start(self, worker):
        if consumes_only_builds(worker.app.amqp.queues.consume_from):
            return
        from jobs.supervisor import start_supervisor

        self.supervising = True
        start_supervisor()

    def stop(self, worker):
        if not self.supervising:
            return
        from jobs.supervisor import stop_supervisor

        stop_supervisor()


app.steps["worker"].add(JobSupervisorStep)


class SwarmManagerQueue(bootsteps.StartStopStep):
    """JOB_BACKEND=swarm: a jobs worker whose Docker Engine is a swarm manager also consumes
    the ``swarm`` queue (the job starts), whatever its ``-Q`` says; other workers never do."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c):
        if settings.JOB_BACKEND != "swarm" or consumes_only_builds(c.app.amqp.queues.consume_from):
            return
        from jobs import runner
        from jobs.backends.swarm import is_manager

        try:
            client = runner.new_client()
            try:
                manager = is_manager(client)
            finally:
                client.close()
        except Exception as exc:  # no engine yet: this worker starts no jobs until restarted
            logger.warning("JOB_BACKEND=swarm: could not ask the Docker Engine its role: %s", exc)
            return
        if manager:
            c.add_task_queue(SWARM_QUEUE, exchange=SWARM_QUEUE, routing_key=SWARM_QUEUE)
            logger.info("this worker's engine is a swarm manager: it starts jobs (queue swarm)")


app.steps["consumer"].add(SwarmManagerQueue)

app.conf.beat_schedule = {
    "heartbeat": {"task": "jobs.tasks.heartbeat", "schedule": 5.0},
    # Re-enqueue pending jobs whose start message may be lost; end jobs of dead hosts.
    "sweep-jobs": {"task": "jobs.tasks.sweep", "schedule": 15.0},
    # Restart queued builds whose message may be lost; fail builds whose worker died.
    "sweep-builds": {"task": "services.tasks.sweep_builds", "schedule": 60.0},
    # Remove images of old builds (keeping BUILD_KEEP_IMAGES and any an unfinished job uses).
    "cleanup-images": {"task": "services.tasks.cleanup_images", "schedule": 600.0},
    # Purge job and build log lines (and service events) older than their workspace's retention.
    "purge-logs": {"task": "jobs.tasks.purge_expired_logs", "schedule": 600.0},
    # Copy big logs' new lines into search chunks (jobs.logs.index), off the ingest path.
    "index-logs": {"task": "jobs.tasks.index_logs", "schedule": settings.LOG_INDEX_EVERY},
    # Forget Idempotency-Key records after their 24 hours.
    "purge-idempotency-keys": {"task": "jobs.tasks.purge_idempotency_keys", "schedule": 3600.0},
    # Delete audit entries older than AUDIT_RETENTION_DAYS (audit.retention).
    "purge-audit-entries": {"task": "audit.tasks.purge_audit_entries", "schedule": 3600.0},
    # Send webhook deliveries that are due (retries, and any whose message or worker was lost).
    "sweep-webhooks": {"task": "webhooks.tasks.sweep", "schedule": 10.0},
}

"""The Celery app. Tasks live in each app's tasks.py and stay thin (logic in plain modules)."""

import os

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("oneoff")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Tasks are short and wait on Docker or the database, so threads serve them well; and the worker's
# main process runs the job supervisor's threads, which must not be forked into pool children.
app.conf.worker_pool = os.environ.get("CELERY_WORKER_POOL", "threads")


class JobSupervisorStep(bootsteps.StartStopStep):
    """Runs jobs.supervisor in every worker (one per host is active; the others stand by):
    it follows this host's job containers, their logs, cancels, timeouts and exits."""

    requires = ("celery.worker.components:Pool",)

    def start(self, worker):
        from jobs.supervisor import start_supervisor

        start_supervisor()

    def stop(self, worker):
        from jobs.supervisor import stop_supervisor

        stop_supervisor()


app.steps["worker"].add(JobSupervisorStep)

app.conf.beat_schedule = {
    "heartbeat": {"task": "jobs.tasks.heartbeat", "schedule": 5.0},
    # Re-enqueue pending jobs whose start message may be lost; end jobs of dead hosts.
    "sweep-jobs": {"task": "jobs.tasks.sweep", "schedule": 15.0},
    # Restart queued builds whose message may be lost; fail builds whose worker died.
    "sweep-builds": {"task": "services.tasks.sweep_builds", "schedule": 60.0},
    # Remove images of old builds (keeping BUILD_KEEP_IMAGES and any an unfinished job uses).
    "cleanup-images": {"task": "services.tasks.cleanup_images", "schedule": 600.0},
    # Purge job and build log lines older than their workspace's retention period.
    "purge-logs": {"task": "jobs.tasks.purge_expired_logs", "schedule": 600.0},
    # Forget Idempotency-Key records after their 24 hours.
    "purge-idempotency-keys": {"task": "jobs.tasks.purge_idempotency_keys", "schedule": 3600.0},
}

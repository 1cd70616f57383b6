"""The Celery app. Tasks live in each app's tasks.py and stay thin (logic in plain modules)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("oneoff")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "heartbeat": {"task": "services.tasks.heartbeat", "schedule": 5.0},
    # Re-enqueue pending jobs whose start message may be lost; end jobs of dead hosts.
    "sweep-jobs": {"task": "jobs.tasks.sweep", "schedule": 15.0},
    # Restart queued builds whose message may be lost; fail builds whose worker died.
    "sweep-builds": {"task": "services.tasks.sweep_builds", "schedule": 60.0},
    # Remove images of old builds (keeping BUILD_KEEP_IMAGES and any an unfinished job uses).
    "cleanup-images": {"task": "services.tasks.cleanup_images", "schedule": 600.0},
    # Purge job and build log lines older than their workspace's retention period.
    "purge-logs": {"task": "services.tasks.purge_expired_logs", "schedule": 600.0},
}

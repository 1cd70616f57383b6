"""The Celery app. Tasks live in each app's tasks.py and stay thin (logic in plain modules)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("oneoff")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "heartbeat": {"task": "services.tasks.heartbeat", "schedule": 5.0},
}

"""A Celery task's database connection outlives the task, as a request's does in Django.

Celery's Django fixup closed every connection of a task's thread before and after each task; with
the threads pool that made every job start open a new PostgreSQL connection (``config/celery.py``).
"""

import pytest
from celery import signals
from celery.fixups.django import DjangoWorkerFixup  # type: ignore[attr-defined] # not in the stubs
from django.db import connection

from config.celery import app
from jobs.tasks import heartbeat


def run_task_signals(task) -> None:
    """What a worker does around one task: the fixup's handlers, then the project's."""
    fixup = DjangoWorkerFixup(app)
    fixup.on_task_prerun(sender=task)
    signals.task_prerun.send(sender=task, task_id="t", task=task, args=(), kwargs={})
    fixup.on_task_postrun(sender=task)
    signals.task_postrun.send(
        sender=task, task_id="t", task=task, args=(), kwargs={}, retval=None, state="SUCCESS"
    )


@pytest.mark.django_db(transaction=True)
def test_a_task_keeps_its_threads_connection():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite keeps no connection (CONN_MAX_AGE 0)")
    connection.close()  # a new one: one made by an earlier test may be past CONN_MAX_AGE
    connection.ensure_connection()
    raw = connection.connection
    run_task_signals(heartbeat)
    assert connection.connection is raw
    with connection.cursor() as cursor:  # still usable
        cursor.execute("SELECT 1")
    assert connection.connection is raw


@pytest.mark.django_db(transaction=True)
def test_a_failed_connection_is_closed_after_the_task():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's connections are always usable to Django")
    connection.ensure_connection()
    connection.connection.close()  # the server went away under it
    connection.errors_occurred = True
    run_task_signals(heartbeat)
    assert connection.connection is None  # the next task connects again

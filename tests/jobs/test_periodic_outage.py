"""Beat's periodic tasks during a database outage (issue 14, point 8): one line per task per
outage, and one when the database answers again, not a traceback every run. The outage is
real: the connection goes to a port where no PostgreSQL listens."""

import logging
import socket

import pytest
from django.db import connection

from jobs import tasks
from jobs.models import RunnerHost
from services import tasks as build_tasks
from tests.helpers import missing_part

pytestmark = pytest.mark.django_db(transaction=True)


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def test_periodic_tasks_log_one_line_per_database_outage(caplog, settings):
    if connection.vendor != "postgresql":
        missing_part("PostgreSQL (the outage is a port where it does not listen)")
    caplog.set_level(logging.INFO)
    db = connection.settings_dict
    real_port = db["PORT"]
    connection.close()
    db["PORT"] = _closed_port()
    periodic = [tasks.heartbeat, tasks.sweep, build_tasks.sweep_builds]
    try:
        for _ in range(4):
            for task in periodic:
                assert task() is None  # no exception: the next scheduled run does the work
    finally:
        connection.close()
        db["PORT"] = real_port
    for task in periodic:
        task()
    assert RunnerHost.objects.filter(name=settings.RUNNER_HOST).exists()
    down = [r for r in caplog.records if "does not answer" in r.getMessage()]
    back = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(down) == len(periodic), caplog.text
    assert len(back) == len(periodic), caplog.text
    assert not any(r.exc_info for r in caplog.records), caplog.text
    assert "Traceback" not in caplog.text


def test_other_errors_still_raise(monkeypatch):
    def broken():
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(tasks.runner, "sweep", broken)
    with pytest.raises(ValueError, match="a bug"):
        tasks.sweep()

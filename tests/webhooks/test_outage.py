"""The webhooks' tasks during a real database outage (the connection goes to a port where no
PostgreSQL listens): one line per outage and one when it answers again, no traceback; what was
due is sent once it answers."""

import logging
import socket

import pytest
from django.db import connection

from services.models import Service
from services.transitions import transition
from tests.helpers import missing_part
from webhooks import tasks
from webhooks.models import Delivery, DeliveryState, Webhook

pytestmark = pytest.mark.django_db(transaction=True)


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def test_the_tasks_log_one_line_per_outage_and_deliver_after_it(
    caplog, workspace, service, hook_receiver, webhook_settings, monkeypatch
):
    if connection.vendor != "postgresql":
        missing_part("PostgreSQL (the outage is a port where it does not listen)")
    monkeypatch.setattr(tasks, "enqueue", lambda pk, countdown=None: None)  # no broker here
    hook = Webhook.objects.create(workspace=workspace, name="ops", url=hook_receiver.url)
    hook_receiver.secret = hook.secret
    transition(Service.objects.filter(pk=service.pk), suspended=True)
    d = Delivery.objects.get()
    caplog.set_level(logging.INFO)
    db = connection.settings_dict
    real_port = db["PORT"]
    connection.close()
    db["PORT"] = _closed_port()
    try:
        for _ in range(3):
            assert tasks.sweep() is None
            assert tasks.deliver(d.pk) is None
    finally:
        connection.close()
        db["PORT"] = real_port
    tasks.deliver(d.pk)
    tasks.sweep()
    assert Delivery.objects.get().state == DeliveryState.DELIVERED
    assert len(hook_receiver.received) == 1
    down = [r for r in caplog.records if "does not answer" in r.getMessage()]
    back = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(down) == 2, caplog.text
    assert len(back) == 2, caplog.text
    assert "Traceback" not in caplog.text

"""A job create reads its service locked (``jobs.launch._LOCKED_SERVICE``, compiled once): an env
change that holds the service's row is wholly before the create's snapshot or after it."""

import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from jobs.launch import create_job
from jobs.models import Job
from services.models import EnvVar, Service


@pytest.fixture
def buildable(service, make_build, monkeypatch):
    make_build(service)
    monkeypatch.setattr("jobs.launch.enqueue_start", lambda job_id: True)
    return service


def test_the_first_read_of_a_create_locks_the_service_row_only(buildable):
    with CaptureQueriesContext(connection) as queries:
        create_job(buildable, "true")
    first = next(q["sql"] for q in queries.captured_queries if "services_service" in q["sql"])
    assert first.endswith('FOR UPDATE OF "services_service"'), first


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_create_waits_for_an_env_change_holding_the_service_and_snapshots_its_result(
    buildable,
):
    """An env change holds the service's row (``select_for_update``) while it writes: a create
    that comes meanwhile waits for its commit and snapshots the new value, not the old one."""
    EnvVar.objects.create(service=buildable, key="COLOUR", value="red")
    holding, release = threading.Event(), threading.Event()
    created: list[Job] = []

    def change():
        try:
            with transaction.atomic():
                Service.objects.select_for_update().get(pk=buildable.pk)
                EnvVar.objects.filter(service=buildable, key="COLOUR").update(value="blue")
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    def create():
        try:
            created.append(create_job(buildable, "echo $COLOUR"))
        finally:
            connection.close()

    changer = threading.Thread(target=change)
    changer.start()
    assert holding.wait(30)
    creator = threading.Thread(target=create)
    creator.start()
    creator.join(1.0)
    waited = creator.is_alive()
    release.set()
    changer.join(30)
    creator.join(30)
    assert waited, "the create did not wait for the service's row"
    assert len(created) == 1
    assert created[0].env_snapshot.values["COLOUR"] == "blue"

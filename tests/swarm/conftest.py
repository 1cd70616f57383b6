"""A single-node swarm on an engine of the session's own (engine.py), and a live worker on it
with JOB_BACKEND=swarm."""

import pytest
from django.utils import timezone

from services.models import Build, BuildStatus, Plan
from tests.swarm import engine


@pytest.fixture(scope="session")
def swarm_engine():
    started, process = engine.start()
    yield started
    try:
        for service in started.client.api.services():
            started.client.api.remove_service(service["ID"])
    except Exception:
        pass
    started.client.close()
    engine.stop(process)


@pytest.fixture(scope="module")
def swarm_routes():
    """Start messages go to the ``swarm`` queue, as in an installation with JOB_BACKEND=swarm
    (this test process runs with the default backend; its worker with swarm)."""
    from config.celery import SWARM_QUEUE, app

    saved = dict(app.conf.task_routes)
    app.conf.task_routes = {**saved, "jobs.tasks.start_job": {"queue": SWARM_QUEUE}}
    app.amqp.flush_routes()
    yield
    app.conf.task_routes = saved
    app.amqp.flush_routes()


@pytest.fixture
def swarm_plan(db):
    """A plan of the given size (memory MB, CPUs), for services of type web_service."""

    def make(memory_mb: int, cpu: str) -> Plan:
        plan, _ = Plan.objects.update_or_create(
            id=f"plan-srv-test-swarm-{memory_mb}-{cpu.replace('.', '_')}",
            defaults={
                "name": f"Swarm test {memory_mb} MB {cpu} CPU",
                "kind": "srv",
                "memory_mb": memory_mb,
                "cpu": cpu,
                "price_monthly": "1.00",
            },
        )
        return plan

    return make


@pytest.fixture
def swarm_service(make_service, swarm_engine):
    service = make_service(name="swarm")
    now = timezone.now()
    Build.objects.create(
        service=service,
        status=BuildStatus.SUCCEEDED,
        started_at=now,
        finished_at=now,
        image_id=swarm_engine.image_id,
    )
    return service

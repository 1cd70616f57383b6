"""The build sweep: builds whose worker died end failed; lost queued builds are re-sent."""

from datetime import timedelta

import pytest
from django.utils import timezone

from services.builds import queue as builds
from services.models import Build, BuildStatus


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(builds, "enqueue_build", calls.append)
    return calls


def test_it_fails_a_build_whose_worker_stopped(service, make_service, sent):
    now = timezone.now()
    dead = Build.objects.create(
        service=service, status=BuildStatus.BUILDING, heartbeat_at=now - timedelta(minutes=5)
    )
    alive = Build.objects.create(
        service=make_service(name="alive"), status=BuildStatus.BUILDING, heartbeat_at=now
    )

    assert builds.sweep_builds(now=now) == {"failed": 1, "resent": 0}

    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == BuildStatus.FAILED
    assert dead.reason.startswith("the worker running this build stopped")
    assert dead.finished_at == now
    assert alive.status == BuildStatus.BUILDING


def test_it_resends_the_oldest_lost_queued_build_per_service(service, make_service, sent):
    now = timezone.now()
    old = now - timedelta(minutes=5)
    first = Build.objects.create(service=service, created_at=old)
    Build.objects.create(service=service, created_at=old + timedelta(seconds=1))
    Build.objects.create(service=make_service(name="fresh"), created_at=now)
    busy = make_service(name="busy")
    Build.objects.create(service=busy, status=BuildStatus.BUILDING, heartbeat_at=now)
    Build.objects.create(service=busy, created_at=old)

    assert builds.sweep_builds(now=now) == {"failed": 0, "resent": 1}
    assert sent == [first.id]

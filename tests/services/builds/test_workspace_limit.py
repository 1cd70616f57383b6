"""BUILD_CONCURRENCY_PER_WORKSPACE against the real Docker Engine: a workspace's builds past its
limit stay queued, start as one of its builds ends (run by that build's runner: no task waits or
polls for them), and never hold up another workspace's builds."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from services.builds import queue as builds
from services.models import Build, BuildStatus
from tests.helpers import BASE, Background, wait_for

pytestmark = pytest.mark.docker


def slow(marker: str, seconds: int) -> dict[str, str]:
    return {"Dockerfile": f"FROM {BASE}\nRUN echo started-{marker} && sleep {seconds}\n"}


def started(build, marker: str) -> bool:
    return build.log_lines.filter(text=f"started-{marker}").exists()


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(builds, "enqueue_build", calls.append)
    return calls


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_workspace_past_its_limit_waits_and_never_holds_up_another(
    repo_service, other_workspace, docker_client, settings, sent
):
    settings.BUILD_CONCURRENCY_PER_WORKSPACE = 2
    marker = f"limit-{time.monotonic_ns()}"
    a, b, c = (
        builds.request_build(repo_service(slow(f"{marker}-{name}", 4), name=name))
        for name in ("a", "b", "c")
    )
    other = repo_service(slow(f"{marker}-d", 0), ws=other_workspace, name="d")
    d = builds.request_build(other)
    assert sent == [a.id, b.id, c.id, d.id]  # each request's own task
    sent.clear()

    # Two worker threads take a and b: both build.
    runners = [Background(builds.run_build, build.id, client=docker_client) for build in (a, b)]
    for runner in runners:
        runner.start()
    wait_for(lambda: started(a, f"{marker}-a") and started(b, f"{marker}-b"), timeout=30)

    # c's task arrives: the workspace is at its limit, so c stays queued and the task ends at
    # once (its thread is free for other work).
    began = time.monotonic()
    assert builds.run_build(c.id, client=docker_client).status == BuildStatus.QUEUED
    assert time.monotonic() - began < 1

    # Another workspace's build runs meanwhile, to its end.
    assert builds.run_build(d.id, client=docker_client).status == BuildStatus.SUCCEEDED
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.status == b.status == BuildStatus.BUILDING

    # When a or b ends, its runner goes on with c: no message, no sweep.
    for runner in runners:
        runner.finish(timeout=60)
    for build in (a, b, c):
        build.refresh_from_db()
        assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert c.started_at >= min(a.finished_at, b.finished_at)
    assert sent == []


def test_the_sweep_leaves_a_full_workspaces_queued_builds_to_its_runners(
    make_service, other_workspace, settings, sent
):
    settings.BUILD_CONCURRENCY_PER_WORKSPACE = 1
    now = timezone.now()
    old = now - timedelta(minutes=5)
    busy = make_service(name="busy")
    Build.objects.create(service=busy, status=BuildStatus.BUILDING, heartbeat_at=now)
    Build.objects.create(service=make_service(name="waits"), created_at=old)  # same workspace
    elsewhere = Build.objects.create(
        service=make_service(other_workspace, name="elsewhere"), created_at=old
    )

    assert builds.sweep_builds(now=now) == {"failed": 0, "resent": 1}
    assert sent == [elsewhere.id]


def test_a_claim_takes_the_workspaces_oldest_queued_build_of_an_idle_service(
    make_service, settings
):
    settings.BUILD_CONCURRENCY_PER_WORKSPACE = 2
    now = timezone.now()
    busy, idle, newer = (make_service(name=n) for n in ("busy", "idle", "newer"))
    Build.objects.create(service=busy, status=BuildStatus.BUILDING, heartbeat_at=now)
    Build.objects.create(service=busy, created_at=now - timedelta(minutes=3))  # waits for busy
    oldest_idle = Build.objects.create(service=idle, created_at=now - timedelta(minutes=2))
    Build.objects.create(service=newer, created_at=now - timedelta(minutes=1))

    # Asked for by the newer service's task, the claim still goes by age.
    claimed = builds.claim_next(newer.id)
    assert claimed == oldest_idle
    assert claimed.status == BuildStatus.BUILDING
    # Two of the workspace's builds now run: its limit.
    assert builds.claim_next(newer.id) is None

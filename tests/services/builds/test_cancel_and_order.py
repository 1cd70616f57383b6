"""Cancel, timeouts and one-build-at-a-time per service, against the real Docker Engine."""

import socket
import time

import pytest

from services.builds import queue as builds
from services.models import BuildStatus
from tests.helpers import BASE, Background, wait_for

pytestmark = pytest.mark.docker


def slow_dockerfile(marker: str, seconds: int = 30) -> str:
    return f"FROM {BASE}\nRUN echo started-{marker} && sleep {seconds} # {marker}\n"


def containers_running(docker_client, marker: str) -> list:
    # The sparse listing: inspecting every container races with other tests removing theirs.
    return [c for c in docker_client.api.containers(all=True) if marker in (c.get("Command") or "")]


def test_cancel_a_queued_build_at_once(service, owner):
    build = builds.request_build(service)

    build = builds.cancel_build(build, user=owner)

    assert build.status == BuildStatus.CANCELED
    assert build.reason == "Canceled by alice@acme.test."
    assert build.finished_at is not None
    assert list(build.log_lines.values_list("text", flat=True)) == [
        "==> Canceled by alice@acme.test."
    ]
    # Its task, when it arrives, does nothing.
    assert builds.run_build(build.id).status == BuildStatus.CANCELED
    # Canceling again returns it unchanged.
    assert builds.cancel_build(build).status == BuildStatus.CANCELED


def test_cancel_refuses_a_finished_build(service, make_build):
    for status in (BuildStatus.SUCCEEDED, BuildStatus.FAILED):
        build = make_build(service, status=status)
        with pytest.raises(builds.CancelRefused, match=f"has already {status}"):
            builds.cancel_build(build)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_cancel_a_running_build(repo_service, docker_client, owner):
    marker = f"cancel-{time.monotonic_ns()}"
    service = repo_service({"Dockerfile": slow_dockerfile(marker)})
    build = builds.request_build(service)
    runner = Background(builds.run_build, build.id, client=docker_client)
    runner.start()
    wait_for(lambda: build.log_lines.filter(text=f"started-{marker}").exists())
    assert containers_running(docker_client, marker)

    started = time.monotonic()
    assert builds.cancel_build(build, user=owner).status == BuildStatus.BUILDING
    build = runner.finish(timeout=15)

    assert time.monotonic() - started < 5
    assert build.status == BuildStatus.CANCELED
    assert build.reason == "Canceled by alice@acme.test."
    assert build.image_id == ""
    assert build.log_lines.order_by("-seq").first().text == (
        "==> Build canceled: Canceled by alice@acme.test."
    )
    # The engine stopped the step and removed its container.
    wait_for(lambda: not containers_running(docker_client, marker), timeout=10)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_build_that_runs_too_long_fails(repo_service, docker_client, settings):
    settings.BUILD_TIMEOUT = 2
    marker = f"timeout-{time.monotonic_ns()}"
    service = repo_service({"Dockerfile": slow_dockerfile(marker)})

    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    assert build.status == BuildStatus.FAILED
    assert build.reason == "the build did not finish within 2 seconds (BUILD_TIMEOUT)"
    wait_for(lambda: not containers_running(docker_client, marker), timeout=10)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_builds_of_one_service_run_one_at_a_time_in_order(repo_service, docker_client):
    marker = f"order-{time.monotonic_ns()}"
    service = repo_service({"Dockerfile": slow_dockerfile(marker, seconds=2)})
    first = builds.request_build(service)
    second = builds.request_build(service)
    runner = Background(builds.run_build, first.id, client=docker_client)
    runner.start()
    wait_for(lambda: first.log_lines.filter(text=f"started-{marker}").exists())

    # The second build's task arrives while the first runs: it waits (stays queued).
    assert builds.run_build(second.id, client=docker_client).status == BuildStatus.QUEUED

    runner.finish()
    first.refresh_from_db()
    second.refresh_from_db()
    # The first build's runner went on with the second one.
    assert first.status == BuildStatus.SUCCEEDED, first.reason
    assert second.status == BuildStatus.SUCCEEDED, second.reason
    assert second.started_at >= first.finished_at
    assert service.latest_successful_build() == second


def test_the_oldest_queued_build_runs_first(service, busybox_image, docker_client):
    service.image_ref = "oneoff-test/busybox:latest"
    service.save()
    first = builds.request_build(service)
    second = builds.request_build(service)

    # Whichever task arrives first, the builds run in the order they were requested.
    builds.run_build(second.id, client=docker_client)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == BuildStatus.SUCCEEDED
    assert first.finished_at <= second.started_at


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_cancel_while_git_clones_kills_git(service, owner, settings):
    # A git server on loopback that accepts and never answers: the clone hangs until killed.
    settings.BUILD_GIT_PROTOCOLS = ["git"]  # git:// is not allowed by default
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    service.repo_url = f"git://127.0.0.1:{listener.getsockname()[1]}/acme/app.git"
    service.save()
    build = builds.request_build(service)
    runner = Background(builds.run_build, build.id)
    try:
        runner.start()
        connection, _ = listener.accept()
        connection.settimeout(10)
        assert connection.recv(1024)  # git's request

        started = time.monotonic()
        builds.cancel_build(build, user=owner)
        build = runner.finish(timeout=15)

        assert time.monotonic() - started < 5
        assert build.status == BuildStatus.CANCELED
        assert build.reason == "Canceled by alice@acme.test."
        # git is gone: after the rest of its request (if any), its end of the connection closes;
        # a live git would keep it open and recv would time out.
        while connection.recv(65536):
            pass
        connection.close()
    finally:
        listener.close()

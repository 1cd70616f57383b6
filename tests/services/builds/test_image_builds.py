"""Image builds against the real Docker Engine: a reference becomes an immutable image id."""

import contextlib
import io
import socket
import threading
import time

import docker
import pytest

from services.builds import queue as builds
from services.models import BuildStatus

pytestmark = pytest.mark.docker


def test_it_resolves_the_reference_to_the_image_id(service, busybox_image, docker_client):
    service.image_ref = "oneoff-test/busybox:latest"
    service.save()
    build = builds.request_build(service)

    build = builds.run_build(build.id, client=docker_client)

    assert build.status == BuildStatus.SUCCEEDED
    assert build.image_id == busybox_image
    assert build.image_id.startswith("sha256:")
    assert build.image_tag == f"oneoff/{service.id}:{build.id}"
    assert docker_client.images.get(build.image_tag).id == busybox_image
    assert build.started_at
    assert build.finished_at
    assert build.reason == ""
    assert service.latest_successful_build() == build
    texts = list(build.log_lines.order_by("seq").values_list("text", flat=True))
    assert f"==> oneoff-test/busybox:latest is image {busybox_image}" in texts


def test_a_later_retag_does_not_change_the_artifact(
    service, busybox_image, docker_client, tmp_path, settings
):
    # A moving tag (a base image the admin allows) first points at busybox, then elsewhere.
    ref = f"oneoff-test/moving:{service.id}"
    settings.BUILD_BASE_IMAGES = [*settings.BUILD_BASE_IMAGES, ref]
    docker_client.api.tag(busybox_image, *ref.split(":"))
    other = docker_client.images.build(
        fileobj=io.BytesIO(b"FROM oneoff-test/busybox:latest\nLABEL other=yes\n"),
        rm=True,
    )[0]
    try:
        build = builds.run_build(
            builds.request_build(service, image_ref=ref).id, client=docker_client
        )
        assert build.status == BuildStatus.SUCCEEDED
        assert build.image_id == busybox_image

        docker_client.api.tag(other.id, *ref.split(":"), force=True)
        assert docker_client.images.get(ref).id == other.id

        build.refresh_from_db()
        assert build.image_id == busybox_image  # the artifact stays the resolved id
        assert docker_client.images.get(build.image_tag).id == busybox_image
        assert service.latest_successful_build().image_id == busybox_image
    finally:
        for name in (ref, other.id):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(name, force=True)


def test_an_image_that_does_not_exist_fails_fast_with_a_reason(service, docker_client):
    # A registry on loopback port 9 (discard) refuses at once: the pull is really tried, and no
    # traffic leaves the machine.
    ref = "127.0.0.1:9/oneoff-test/no-such-image:1"
    started = time.monotonic()

    build = builds.run_build(builds.request_build(service, image_ref=ref).id, client=docker_client)

    assert time.monotonic() - started < 15
    assert build.status == BuildStatus.FAILED
    assert build.reason == (
        f"image {ref!r} could not be pulled: cannot connect to 127.0.0.1: the address is not "
        "allowed or did not answer"
    )
    assert build.image_id == ""
    assert build.image_tag == ""
    texts = list(build.log_lines.order_by("seq").values_list("text", flat=True))
    assert f"==> Pulling {ref}" in texts
    assert texts[-1] == f"==> Build failed: {build.reason}"
    assert service.latest_successful_build() is None


def test_a_pull_that_hangs_times_out(service, docker_client, settings):
    # A TCP listener on loopback that accepts and never answers: the pull hangs until
    # BUILD_PULL_TIMEOUT.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    settings.BUILD_PULL_TIMEOUT = 2
    ref = f"127.0.0.1:{port}/oneoff-test/hangs:1"
    try:
        started = time.monotonic()
        build = builds.run_build(
            builds.request_build(service, image_ref=ref).id, client=docker_client
        )
        assert time.monotonic() - started < 10
    finally:
        listener.close()
    assert build.status == BuildStatus.FAILED
    # The same words as for a refused port: a pull is no port scanner.
    assert build.reason == (
        f"image {ref!r} could not be pulled: cannot connect to 127.0.0.1: the address is not "
        "allowed or did not answer"
    )


def test_a_port_that_answers_garbage_says_the_same(service, docker_client):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]

    def answer():
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                conn.sendall(b"\x16\x03\x01\x00\x05hello")  # a TLS record, not HTTP
                conn.close()

    threading.Thread(target=answer, daemon=True).start()
    ref = f"127.0.0.1:{port}/oneoff-test/tls:1"
    try:
        build = builds.run_build(
            builds.request_build(service, image_ref=ref).id, client=docker_client
        )
    finally:
        listener.close()
    assert build.reason == (
        f"image {ref!r} could not be pulled: cannot connect to 127.0.0.1: the address is not "
        "allowed or did not answer"
    )


def test_an_invalid_reference_fails_with_a_reason(service, docker_client):
    build = builds.run_build(
        builds.request_build(service, image_ref="Not A Valid:Ref").id, client=docker_client
    )

    assert build.status == BuildStatus.FAILED
    assert "Not A Valid:Ref" in build.reason


def test_a_service_without_a_source_fails_with_a_reason(service, docker_client):
    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    assert build.status == BuildStatus.FAILED
    assert build.reason == "the service has no build source: set an image or a git repository"

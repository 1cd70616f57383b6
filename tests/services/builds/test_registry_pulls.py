"""Image services pull from registries, always, and take the image by the digest the registry
gave (issue 13, point 1). A real registry (Debian's docker-registry) on loopback."""

import contextlib
import uuid

import docker
import pytest

from api.schemas.services import build_dict
from services.builds import queue as builds
from services.models import BuildStatus, RegistryCredential
from tests.helpers import BASE

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _remove_pulled_tags(docker_client):
    """Pulls tag what they pulled (host:port/repo:tag): leave the engine as it was."""
    yield
    for image in docker_client.images.list():
        for ref in [*image.tags, *(image.attrs.get("RepoDigests") or [])]:
            if ref.startswith("127.0.0.1:"):
                with contextlib.suppress(docker.errors.DockerException):
                    docker_client.images.remove(ref, noprune=True)


def test_an_image_service_pulls_and_records_the_digest(
    registry, make_service, busybox_image, docker_client
):
    tag = f"acme/app:{uuid.uuid4().hex[:8]}"
    digest = registry.push(busybox_image, tag)
    ref = registry.reference(tag)
    service = make_service(name="img", image_ref=ref)

    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert build.image_id == busybox_image
    assert build.image_digest == digest
    assert build_dict(build)["imageDigest"] == digest
    lines = list(build.log_lines.values_list("text", flat=True))
    assert f"==> {ref} is {ref.rsplit(':', 1)[0]}@{digest}" in lines


def test_a_private_image_needs_the_workspaces_credential_every_time(
    auth_registry,
    make_service,
    busybox_image,
    docker_client,
    workspace,
    other_workspace,
):
    tag = f"acme/private:{uuid.uuid4().hex[:8]}"
    auth_registry.push(busybox_image, tag)
    ref = auth_registry.reference(tag)
    credential = RegistryCredential.objects.create(
        workspace=workspace,
        name="acme",
        registry="DOCKER",
        username=auth_registry.username,
        auth_token=auth_registry.password,
    )
    mine = make_service(name="mine", image_ref=ref, registry_credential=credential)
    build = builds.run_build(builds.request_build(mine).id, client=docker_client)
    assert build.status == BuildStatus.SUCCEEDED, build.reason

    # The image is now on the shared engine, under that very name: another workspace without
    # the credential still cannot have it, because the registry is asked every time.
    assert docker_client.images.get(ref)
    theirs = make_service(other_workspace, name="theirs", image_ref=ref)
    build = builds.run_build(builds.request_build(theirs).id, client=docker_client)

    assert build.status == BuildStatus.FAILED
    assert build.reason.startswith(f"image {ref!r} could not be pulled: ")
    assert "no basic auth credentials" in build.reason or "unauthorized" in build.reason
    assert auth_registry.password not in build.reason


def test_a_repository_build_pulls_what_its_dockerfile_names(
    registry, repo_service, busybox_image, docker_client
):
    tag = f"acme/base:{uuid.uuid4().hex[:8]}"
    registry.push(busybox_image, tag)
    ref = registry.reference(tag)
    service = repo_service({"Dockerfile": f"FROM {ref}\nRUN echo built on the pulled base\n"})

    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert "built on the pulled base" in build.log_lines.values_list("text", flat=True)


@pytest.mark.parametrize("host", ["127.0.0.1:5999", "169.254.169.254", "localhost:5999"])
def test_pulls_from_internal_addresses_are_refused(
    host, make_service, repo_service, docker_client, settings
):
    settings.EGRESS_ALLOW = []
    ref = f"{host}/acme/app:1"
    image = make_service(name="img", image_ref=ref)
    build = builds.run_build(builds.request_build(image).id, client=docker_client)
    assert build.status == BuildStatus.FAILED
    assert build.reason == (
        f"image {ref!r} could not be pulled: cannot connect to {host.split(':')[0]}: "
        "the address is not allowed or did not answer"
    )

    repo = repo_service({"Dockerfile": f"FROM {BASE}\nCOPY --from={ref} /x /x\n"})
    build = builds.run_build(builds.request_build(repo).id, client=docker_client)
    assert build.status == BuildStatus.FAILED
    assert "the address is not allowed or did not answer" in build.reason

"""Images on every node (issue 19, point 3): with JOB_REGISTRY set, a build pushes its image to
the job registry under its workspace's path and records it by digest; a job's image is that
digest reference, which an engine that never built it pulls and runs. A workspace cannot name
another workspace's image there. Real registries: the swarm lab's (on node 1's address, nodes
pull from it) and an htpasswd one on loopback for the credentials."""

import contextlib
import uuid

import docker
import pytest

from services.builds import queue as builds
from services.builds.images import pull_job_image
from services.errors import Invalid
from services.image_refs import classify
from services.models import BuildStatus

pytestmark = pytest.mark.docker

BASE = "oneoff-test/busybox:latest"  # a base image of the test settings


@pytest.fixture
def lab_engine(swarm_lab, settings):
    """Node 1 of the lab builds (its engine trusts the lab registry); JOB_REGISTRY is the lab's."""
    settings.JOB_REGISTRY = swarm_lab.registry
    client = swarm_lab.client(1)
    client.images.get(swarm_lab.image).tag(*BASE.split(":"))
    return client


def test_a_build_is_pushed_and_a_node_that_never_built_it_runs_it_by_digest(
    swarm_lab, lab_engine, make_service, workspace
):
    service = make_service(name="app", image_ref=BASE)

    build = builds.run_build(builds.request_build(service).id, client=lab_engine)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    prefix = f"{swarm_lab.registry}/ws-{workspace.id}/{service.id}@sha256:".lower()
    assert build.registry_image.startswith(prefix)
    assert build.job_image == build.registry_image
    assert build.image_id.startswith("sha256:")  # the engine's id is still recorded
    texts = list(build.log_lines.values_list("text", flat=True))
    assert f"==> Pushed: {build.registry_image}" in texts
    # Only the digest reference is left behind: the push's tag is removed from the builder.
    repository = build.registry_image.partition("@")[0]
    assert not [t for i in lab_engine.images.list() for t in i.tags if t.startswith(repository)]

    node3 = swarm_lab.client(3)
    with contextlib.suppress(docker.errors.ImageNotFound):
        node3.images.remove(build.registry_image, force=True)
    ref = pull_job_image(node3, build)
    assert ref == build.registry_image
    assert node3.images.get(ref).id == build.image_id  # the very image that was built
    out = node3.containers.run(ref, ["echo", "ran on node3"], network_mode="none", remove=True)
    assert out == b"ran on node3\n"


def test_another_workspace_cannot_name_an_image_in_the_job_registry(
    swarm_lab, lab_engine, make_service, workspace, other_workspace
):
    service = make_service(name="secret-app", image_ref=BASE)
    build = builds.run_build(builds.request_build(service).id, client=lab_engine)
    assert build.status == BuildStatus.SUCCEEDED, build.reason
    repository, _, digest = build.registry_image.partition("@")
    attempts = [
        build.registry_image,  # the digest, as recorded
        f"{repository}:{build.id}",  # the tag the push used
        f"{swarm_lab.registry}/ws-{workspace.id}/{service.id}@{digest}",
        f"{swarm_lab.registry.split(':')[0]}:80/ws-{workspace.id}/{service.id}@{digest}",
        f"{swarm_lab.registry}/ws-{other_workspace.id}/{service.id}@{digest}",
    ]
    for ref in attempts:
        with pytest.raises(Invalid, match="job registry"):
            classify(ref, other_workspace.id)
    # Through a build of the other workspace, which would pull it on the engine.
    thief = make_service(other_workspace, name="thief", image_ref=BASE)
    stolen = builds.run_build(
        builds.request_build(thief, image_ref=build.registry_image).id, client=lab_engine
    )
    assert stolen.status == BuildStatus.FAILED
    assert "job registry" in stolen.reason
    assert stolen.image_id == ""
    assert stolen.registry_image == ""
    # Its own workspace may name it (as its own build, by the recorded id).
    source = classify(build.registry_image, workspace.id)
    assert source.kind == "own"
    assert source.image_id == build.image_id


def test_the_registry_login_is_used_and_never_shown(
    auth_registry, make_service, busybox_image, docker_client, settings, workspace
):
    settings.JOB_REGISTRY = auth_registry.host
    settings.JOB_REGISTRY_USERNAME = auth_registry.username
    settings.JOB_REGISTRY_PASSWORD = auth_registry.password
    service = make_service(name="private", image_ref=BASE)

    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert build.registry_image.startswith(f"{auth_registry.host}/ws-{workspace.id}/")
    texts = "\n".join(build.log_lines.values_list("text", flat=True))
    assert auth_registry.password not in texts

    # A wrong password: the build fails with the registry's answer, without the password.
    settings.JOB_REGISTRY_PASSWORD = f"wrong-{uuid.uuid4().hex}"
    failed = builds.run_build(builds.request_build(service).id, client=docker_client)
    assert failed.status == BuildStatus.FAILED
    assert "could not be pushed to the job registry" in failed.reason
    texts = "\n".join(failed.log_lines.values_list("text", flat=True))
    for secret in (auth_registry.password, settings.JOB_REGISTRY_PASSWORD):
        assert secret not in failed.reason
        assert secret not in texts
    assert failed.registry_image == ""
    with contextlib.suppress(docker.errors.DockerException):
        docker_client.images.remove(build.registry_image, noprune=True)


def test_without_a_job_registry_jobs_run_the_engines_image(
    make_service, busybox_image, docker_client, settings
):
    settings.JOB_REGISTRY = ""
    service = make_service(name="local", image_ref=BASE)
    build = builds.run_build(builds.request_build(service).id, client=docker_client)
    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert build.registry_image == ""
    assert build.job_image == build.image_id == busybox_image
    assert pull_job_image(docker_client, build) == busybox_image


def test_a_job_of_a_pushed_build_runs_on_an_engine_that_never_built_it(
    swarm_lab, lab_engine, make_service, settings
):
    """The runner pulls the job's image by digest before it creates the container."""
    from jobs import runner
    from jobs.launch import create_job
    from jobs.models import Job, JobStatus

    service = make_service(name="pulled", image_ref=BASE)
    build = builds.run_build(builds.request_build(service).id, client=lab_engine)
    assert build.status == BuildStatus.SUCCEEDED, build.reason
    node3 = swarm_lab.client(3)
    with contextlib.suppress(docker.errors.ImageNotFound):
        node3.images.remove(build.registry_image, force=True)
    settings.JOB_NETWORK = "none"
    job = create_job(service, "echo ran")
    try:
        assert runner.start(job.id, client=node3) == runner.StartOutcome.STARTED
        job = Job.objects.get(pk=job.pk)
        assert job.status == JobStatus.RUNNING
        container = node3.api.inspect_container(job.container_id)
        assert container["Config"]["Image"] == build.registry_image  # by digest
        assert container["Image"] == build.image_id  # the very image that was built
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            node3.api.remove_container(job.container_id or job.container_name, force=True)


def test_a_job_whose_image_cannot_be_pulled_waits_with_a_note(
    swarm_lab, lab_engine, make_service, docker_client, settings
):
    """A registry that does not answer (here: an engine that does not trust it) holds the job
    pending with the reason, to be tried again, rather than failing it at once."""
    from jobs import runner
    from jobs.launch import create_job
    from jobs.models import Job, JobStatus

    service = make_service(name="unpullable", image_ref=BASE)
    build = builds.run_build(builds.request_build(service).id, client=lab_engine)
    assert build.status == BuildStatus.SUCCEEDED, build.reason
    job = create_job(service, "echo never")
    # The machine's own engine cannot reach the lab's registry (it lives in the lab's network).
    assert runner.start(job.id, client=docker_client) == runner.StartOutcome.WAITING
    job = Job.objects.get(pk=job.pk)
    assert job.status == JobStatus.PENDING
    assert job.note.startswith("Waiting for the job's image on ")
    assert "could not be pulled from the job registry" in job.note
    assert job.claimed_at is None

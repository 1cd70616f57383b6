"""Reruns against the real parts (the API, PostgreSQL, Redis, a Celery worker, the Docker
Engine): "exactly" runs the original's image and env snapshot after both changed, "on latest"
runs the new ones, and once image cleanup removed the original's image an exact rerun is refused
with a message that says so."""

import contextlib
from datetime import timedelta

import docker
import pytest
from django.utils import timezone

from jobs.logs.retention import purge_expired_logs
from jobs.models import Job, JobStatus
from services.builds import queue as builds
from services.models import EnvVar
from tests.helpers import assert_error, wait_finished

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COMMAND = 'echo "mark=$IMAGE_MARK greeting=$GREETING"'


@pytest.fixture
def marked_image(docker_client, busybox_image):
    """An image other than busybox (its config sets IMAGE_MARK=new), tagged like a build."""
    holder = docker_client.containers.create(
        busybox_image, "true", network_mode="none", labels={"oneoff.test": "rerun"}
    )
    try:
        image = holder.commit(repository="oneoff-test/rerun-marked", changes=["ENV IMAGE_MARK=new"])
    finally:
        holder.remove(force=True)
    yield image.id
    docker_client.images.remove(image.id, force=True)


@pytest.fixture
def first_tag(docker_client, busybox_image, job_service):
    """The first build's image tag, as the builder names it (oneoff/<service>:<build>)."""
    build = job_service.latest_successful_build()
    repository, tag = f"oneoff/{job_service.id.lower()}", build.id
    docker_client.images.get(busybox_image).tag(repository, tag)
    build.image_tag = f"{repository}:{tag}"
    build.save(update_fields=["image_tag"])
    yield build
    with contextlib.suppress(docker.errors.ImageNotFound):  # cleanup removed it, as it should
        docker_client.images.remove(build.image_tag)


def run(api, service, **body) -> Job:
    response = api.post(f"/v1/services/{service.id}/jobs", body)
    assert response.status_code == 201, response.content
    return wait_finished(Job.objects.get(pk=response.json()["id"]))


def printed(job: Job) -> list[str]:
    assert job.status == JobStatus.SUCCEEDED, (job.status, job.reason)
    return list(job.log_lines.order_by("seq").values_list("text", flat=True))


def test_exact_reruns_the_old_image_and_env_and_on_latest_the_new_ones(
    owner_api, live_worker, job_service, busybox_build, marked_image, first_tag, docker_client
):
    EnvVar.objects.create(service=job_service, key="GREETING", value="old")
    original = run(owner_api, job_service, startCommand=COMMAND)
    assert printed(original) == ["mark= greeting=old"]

    # Both change: a new build (another image) and a new value.
    new_build = busybox_build(job_service, image_id=marked_image)
    assert job_service.latest_successful_build() == new_build
    EnvVar.objects.filter(service=job_service, key="GREETING").update(value="new")

    exact = run(owner_api, job_service, rerunOf=original.id, exact=True)
    assert printed(exact) == ["mark= greeting=old"]
    assert (exact.build_id, exact.env_snapshot_id) == (original.build_id, original.env_snapshot_id)
    assert (exact.rerun_of_id, exact.exact, exact.start_command) == (original.id, True, COMMAND)

    latest = run(owner_api, job_service, rerunOf=original.id)
    assert printed(latest) == ["mark=new greeting=new"]
    assert latest.build_id == new_build.id
    assert (latest.rerun_of_id, latest.exact) == (original.id, False)

    shown = owner_api.get(f"/v1/services/{job_service.id}/jobs/{exact.id}").json()
    assert (shown["rerunOf"], shown["exact"]) == (original.id, True)

    # Cleanup keeps the original's image while its jobs' logs are kept...
    assert builds.cleanup_images(client=docker_client, keep=1) == []
    # ...and removes it once they expired; then an exact rerun is refused, saying why.
    purge_expired_logs(now=timezone.now() + timedelta(days=400))
    assert builds.cleanup_images(client=docker_client, keep=1) == [first_tag.image_tag]
    refused = owner_api.post(
        f"/v1/services/{job_service.id}/jobs", {"rerunOf": original.id, "exact": True}
    )
    assert_error(refused, 400)
    message = refused.json()["message"]
    assert f"image of its build {first_tag.id} was removed" in message
    assert "rerun it on the latest build instead" in message
    assert Job.objects.count() == 3  # nothing was created

"""Image cleanup against the real Docker Engine."""

import docker
import pytest
from django.utils import timezone

from jobs.launch import create_job
from jobs.models import Job, JobStatus
from services.builds import queue as builds
from services.models import Build, BuildStatus
from tests.helpers import BASE

pytestmark = pytest.mark.docker


def has_tag(docker_client, tag: str) -> bool:
    return any(tag in image.tags for image in docker_client.images.list(name=tag.split(":")[0]))


def image_builds(service, docker_client, count: int) -> list[Build]:
    service.image_ref = BASE
    service.save()
    made = []
    for _ in range(count):
        build = builds.run_build(builds.request_build(service).id, client=docker_client)
        assert build.status == BuildStatus.SUCCEEDED, build.reason
        made.append(build)
    return made


def test_it_keeps_the_latest_builds_and_those_jobs_within_log_retention_use(
    service, make_service, busybox_image, docker_client
):
    (oldest,) = image_builds(service, docker_client, 1)
    job = create_job(service, "echo hi")  # pending: it still needs the oldest build's image
    assert job.build == oldest
    middle, newer, newest = image_builds(service, docker_client, 3)
    (other,) = image_builds(make_service(name="other"), docker_client, 1)
    failed = builds.run_build(
        builds.request_build(service, image_ref="127.0.0.1:9/none:1").id, client=docker_client
    )
    assert failed.status == BuildStatus.FAILED

    removed = builds.cleanup_images(client=docker_client, keep=2)

    assert removed == [middle.image_tag]
    assert not has_tag(docker_client, middle.image_tag)
    for build in (oldest, newer, newest, other):
        assert has_tag(docker_client, build.image_tag), build
    assert docker_client.images.get(BASE).id == busybox_image  # untagged, not deleted
    middle.refresh_from_db()
    assert middle.image_removed_at is not None
    assert service.latest_successful_build() == newest

    # A finished job keeps its image while its logs are kept (an exact rerun may need it)...
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
    assert builds.cleanup_images(client=docker_client, keep=2) == []
    # ...and once its logs expired the image can go too; a second run is a no-op.
    Job.objects.filter(pk=job.pk).update(logs_purged_at=timezone.now())
    assert builds.cleanup_images(client=docker_client, keep=2) == [oldest.image_tag]
    assert builds.cleanup_images(client=docker_client, keep=2) == []


def test_it_deletes_old_built_images_and_skips_one_a_container_uses(repo_service, docker_client):
    service = repo_service({"Dockerfile": f"FROM {BASE}\nCOPY v /v\n", "v": "1"})
    first = builds.run_build(builds.request_build(service).id, client=docker_client)
    service.repo.commit({"v": "2"}, "Two")
    second = builds.run_build(builds.request_build(service).id, client=docker_client)
    service.repo.commit({"v": "3"}, "Three")
    third = builds.run_build(builds.request_build(service).id, client=docker_client)
    assert {first.status, second.status, third.status} == {BuildStatus.SUCCEEDED}
    assert len({first.image_id, second.image_id, third.image_id}) == 3
    # A stopped container still holds the second build's image.
    holder = docker_client.containers.create(
        second.image_id, "true", network_mode="none", labels={"oneoff.test": "builds"}
    )
    try:
        assert builds.cleanup_images(client=docker_client, keep=1) == [first.image_tag]
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(first.image_id)  # the image itself is gone
        assert docker_client.images.get(second.image_id)
        second.refresh_from_db()
        assert second.image_removed_at is None  # tried again on the next run
    finally:
        holder.remove(force=True)

    assert builds.cleanup_images(client=docker_client, keep=1) == [second.image_tag]
    assert has_tag(docker_client, third.image_tag)


def test_it_never_removes_the_latest_successful_build(service, busybox_image, docker_client):
    (only,) = image_builds(service, docker_client, 1)

    assert builds.cleanup_images(client=docker_client, keep=0) == []
    assert has_tag(docker_client, only.image_tag)

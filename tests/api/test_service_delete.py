"""``DELETE /v1/services/{id}``, driven by Render's own Python client: a 204; the service is gone
from lists and lookups (404 after) and its name is free; its unfinished jobs and builds are
canceled (a running job's container stopped, for real); image cleanup removes its images; its
jobs and their logs stay readable by job id; admins only, and another workspace's admin gets the
404 of a missing service."""

import contextlib
from datetime import timedelta

import docker
import pytest
from django.test import Client
from django.utils import timezone
from render.public_api.api.logs import list_logs
from render.public_api.api.one_off_jobs import retrieve_job
from render.public_api.api.services import delete_service, list_services, retrieve_service
from render.public_api.models import Job as RenderJob

from audit.models import AuditEntry
from jobs.launch import create_job
from jobs.models import Job, JobStatus
from services.builds import queue as builds
from services.models import Build, BuildStatus, EnvVar, Service
from tests.helpers import add_lines, assert_error, wait_finished, wait_for, wait_status

IMAGE = "docker.io/library/busybox:1.36"


@pytest.fixture
def doomed(make_service, make_build):
    """A service with a successful build, an env var, a finished job with log lines, a pending
    job and a queued build."""
    service = make_service(name="doomed", image_ref=IMAGE)
    make_build(service)
    EnvVar.objects.create(service=service, key="GREETING", value="hello")
    finished = create_job(service, "echo hi")
    Job.objects.filter(pk=finished.pk).update(
        status=JobStatus.SUCCEEDED,
        started_at=timezone.now() - timedelta(seconds=2),
        finished_at=timezone.now(),
        exit_code=0,
    )
    add_lines(finished, ["hello from a deleted service"])
    pending = create_job(service, "sleep 60")
    queued = builds.request_build(service)
    service.jobs_made = (finished, pending)
    service.queued_build = queued
    return service


@pytest.mark.django_db(transaction=True)
def test_renders_client_deletes_a_service(render, owner_api, doomed, workspace):
    finished, pending = doomed.jobs_made
    gone = delete_service.sync_detailed(doomed.id, client=render)
    assert gone.status_code == 204, gone.content

    # Gone from lists and lookups, and from everything under it.
    assert retrieve_service.sync_detailed(doomed.id, client=render).status_code == 404
    assert doomed.id not in {s.service.id for s in list_services.sync(client=render, limit=100)}
    assert delete_service.sync_detailed(doomed.id, client=render).status_code == 404
    for method, path, body in [
        ("GET", f"/v1/services/{doomed.id}/env-vars", None),
        ("GET", f"/v1/services/{doomed.id}/deploys", None),
        ("GET", f"/v1/services/{doomed.id}/jobs", None),
        ("POST", f"/v1/services/{doomed.id}/jobs", {"startCommand": "echo"}),
        ("POST", f"/v1/services/{doomed.id}/deploys", {}),
        ("PATCH", f"/v1/services/{doomed.id}", {"name": "back"}),
    ]:
        assert_error(owner_api.request(method, path, body), 404)
    assert not Service.objects.filter(pk=doomed.id).exists()
    assert Service.all_objects.get(pk=doomed.id).deleted_at is not None

    # Its pending job was canceled, its queued build too.
    pending.refresh_from_db()
    assert pending.status == JobStatus.CANCELED
    assert Build.objects.get(pk=doomed.queued_build.pk).status == BuildStatus.CANCELED

    # Its jobs stay readable by id, their logs too.
    for job, status in ((finished, "succeeded"), (pending, "canceled")):
        got = retrieve_job.sync(doomed.id, job.id, client=render)
        assert isinstance(got, RenderJob), got
        assert (got.id, got.status) == (job.id, status)
    page = list_logs.sync(client=render, owner_id=workspace.id, resource=[finished.id])
    assert [line.message for line in page.logs] == ["hello from a deleted service"]

    # The name is free again.
    body = {
        "type": "web_service",
        "name": "doomed",
        "ownerId": workspace.id,
        "image": {"ownerId": workspace.id, "imagePath": IMAGE},
    }
    assert owner_api.post("/v1/services", body).status_code == 201

    entry = AuditEntry.objects.get(action="service.delete")
    assert (entry.target_id, entry.metadata["name"]) == (doomed.id, "doomed")
    assert AuditEntry.objects.filter(action="job.cancel", target_id=pending.id).exists()


def test_the_dashboard_no_longer_shows_it(owner_api, owner, doomed):
    assert owner_api.delete(f"/v1/services/{doomed.id}").status_code == 204
    browser = Client()
    browser.force_login(owner)
    assert browser.get(f"/services/{doomed.id}/").status_code == 404
    home = browser.get(f"/workspaces/{doomed.workspace_id}/")
    assert home.status_code == 200
    assert doomed.id not in home.content.decode()


def test_only_admins_delete_and_another_workspace_gets_404(
    viewer_api, developer_api, readonly_api, outsider_api, doomed
):
    for api in (viewer_api, developer_api, readonly_api):
        assert_error(api.delete(f"/v1/services/{doomed.id}"), 403)
    assert_error(outsider_api.delete(f"/v1/services/{doomed.id}"), 404)
    assert_error(outsider_api.delete("/v1/services/srv-00000000000000000000"), 404)
    assert Service.objects.filter(pk=doomed.id).exists()
    assert not AuditEntry.objects.filter(action="service.delete").exists()
    pending = doomed.jobs_made[1]
    pending.refresh_from_db()
    assert pending.status == JobStatus.PENDING


def test_a_deleted_services_job_is_still_readable_only_in_its_workspace(
    owner_api, outsider_api, doomed
):
    finished, _ = doomed.jobs_made
    assert owner_api.delete(f"/v1/services/{doomed.id}").status_code == 204
    path = f"/v1/services/{doomed.id}/jobs/{finished.id}"
    assert owner_api.get(path).json()["id"] == finished.id
    assert_error(outsider_api.get(path), 404)


@pytest.fixture
def tagged_build(docker_client, busybox_image, job_service):
    """The service's build, tagged as the builder tags (oneoff/<service>:<build>)."""
    build = job_service.latest_successful_build()
    repository = f"oneoff/{job_service.id.lower()}"
    docker_client.images.get(busybox_image).tag(repository, build.id)
    build.image_tag = f"{repository}:{build.id}"
    build.save(update_fields=["image_tag"])
    yield build
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(build.image_tag)


@pytest.mark.docker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_delete_stops_a_running_job_and_cleanup_removes_the_images(
    owner_api, live_worker, job_service, tagged_build, docker_client
):
    made = owner_api.post(f"/v1/services/{job_service.id}/jobs", {"startCommand": "sleep 60"})
    assert made.status_code == 201, made.content
    job = wait_status(Job.objects.get(pk=made.json()["id"]), JobStatus.RUNNING, 30)
    # Within retention a job keeps its build's image (for exact reruns) ...
    assert builds.cleanup_images(client=docker_client, keep=1) == []

    assert owner_api.delete(f"/v1/services/{job_service.id}").status_code == 204
    job = wait_finished(job, 30)
    assert job.status == JobStatus.CANCELED
    assert job.canceled_by is not None

    # ... but a deleted service's jobs never run again: its images go, by the cleanup the
    # delete asked the builds worker for (or, were a container still stopping, a later run).
    def removed():
        if Build.objects.get(pk=tagged_build.pk).image_removed_at is None:
            builds.cleanup_images(client=docker_client, keep=1)
        return Build.objects.get(pk=tagged_build.pk).image_removed_at

    wait_for(removed, 30, 0.5, "the deleted service's image to be removed")
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tagged_build.image_tag)
    shown = owner_api.get(f"/v1/services/{job_service.id}/jobs/{job.id}").json()
    assert shown["status"] == "canceled"

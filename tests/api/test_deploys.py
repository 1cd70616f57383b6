"""Deploys in Render's shapes, driven by Render's own Python client (PyPI ``render``, its models
the schema, strictly: a missing field is a ``KeyError``, an enum out of range a ``ValueError``):
list, create, retrieve, cancel and rollback; statuses mapped from the build's state; a rollback
makes an earlier build what new jobs run while jobs already created keep theirs, proven with real
builds, a real worker and the engine; isolation, roles and 400s naming the field."""

import contextlib
from datetime import timedelta

import pytest
from django.utils import timezone
from render.public_api.api.deploys import (
    cancel_deploy,
    create_deploy,
    list_deploys,
    retrieve_deploy,
    rollback_deploy,
)
from render.public_api.api.services import create_service
from render.public_api.models import (
    CreateDeployBody,
    CreateDeployBodyClearCache,
    Deploy,
    DeployMode,
    DeployStatus,
    DeployTrigger,
    DeployWithCursor,
    Image,
    RollbackDeployBody,
    ServiceAndDeploy,
    ServicePOST,
    ServiceType,
    WebServiceDetailsPOST,
)

from audit.models import AuditEntry
from jobs.launch import create_job
from jobs.models import Job, JobStatus
from services.builds import queue as builds
from services.models import Build, BuildStatus
from services.models import Deploy as DeployRow
from tests.helpers import BASE, Repo, assert_error, wait_finished, wait_for

IMAGE = "docker.io/library/busybox:1.36"


def finish(deploy: DeployRow, status=BuildStatus.SUCCEEDED, *, at=None, image_id=None) -> Build:
    """End a deploy's build as a builder would (no builder runs in these tests), as if it was
    made two seconds before ``at``."""
    at = at or timezone.now()
    made = at - timedelta(seconds=2)
    DeployRow.objects.filter(pk=deploy.pk).update(created_at=made)
    fields = {
        "status": status,
        "created_at": made,
        "started_at": at - timedelta(seconds=1),
        "finished_at": at,
    }
    if status == BuildStatus.SUCCEEDED:
        fields["image_id"] = image_id or "sha256:" + deploy.id[-20:].ljust(64, "0")
    Build.objects.filter(pk=deploy.build_id).update(**fields)
    return Build.objects.get(pk=deploy.build_id)


@pytest.fixture
def image_service(make_service):
    return make_service(name="img", image_ref=IMAGE)


@pytest.fixture
def three_deploys(image_service):
    """Three deploys of ``image_service``: an older and a newer successful one, then a failed
    one (the newer is live)."""
    now = timezone.now()
    old = builds.request_deploy(image_service)
    finish(old, at=now - timedelta(minutes=10))
    new = builds.request_deploy(image_service)
    finish(new, at=now - timedelta(minutes=5))
    failed = builds.request_deploy(image_service)
    finish(failed, BuildStatus.FAILED, at=now - timedelta(minutes=1))
    return old, new, failed


def statuses(render, service) -> dict[str, DeployStatus]:
    listed = list_deploys.sync(service.id, client=render, limit=100)
    assert all(isinstance(item, DeployWithCursor) for item in listed), listed
    return {item.deploy.id: item.deploy.status for item in listed}


# Render's client --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_renders_client_creates_retrieves_lists_and_cancels_a_deploy(render, image_service):
    made = create_deploy.sync_detailed(image_service.id, client=render, body=CreateDeployBody())
    assert made.status_code == 201, made.content
    deploy = made.parsed
    assert isinstance(deploy, Deploy), made.content
    assert deploy.id.startswith("dep-")
    assert (deploy.status, deploy.trigger) == (DeployStatus.QUEUED, DeployTrigger.API)
    assert deploy.image.ref == IMAGE
    row = DeployRow.objects.get(pk=deploy.id)
    assert deploy.build_id == row.build_id
    assert deploy.created_at
    assert deploy.updated_at

    got = retrieve_deploy.sync(image_service.id, deploy.id, client=render)
    assert isinstance(got, Deploy), got
    assert got.to_dict() == deploy.to_dict()
    listed = list_deploys.sync(image_service.id, client=render)
    assert [item.deploy.id for item in listed] == [deploy.id]
    assert listed[0].cursor

    # The build is picked up: the deploy's build is in progress.
    Build.objects.filter(pk=row.build_id).update(
        status=BuildStatus.BUILDING, started_at=timezone.now()
    )
    building = retrieve_deploy.sync(image_service.id, deploy.id, client=render)
    assert building.status == DeployStatus.BUILD_IN_PROGRESS
    assert building.started_at is not None
    Build.objects.filter(pk=row.build_id).update(status=BuildStatus.QUEUED, started_at=None)

    canceled = cancel_deploy.sync(image_service.id, deploy.id, client=render)
    assert isinstance(canceled, Deploy), canceled
    assert canceled.status == DeployStatus.CANCELED
    assert canceled.finished_at is not None
    assert Build.objects.get(pk=row.build_id).status == BuildStatus.CANCELED
    again = cancel_deploy.sync(image_service.id, deploy.id, client=render)
    assert again.status == DeployStatus.CANCELED  # unchanged
    assert AuditEntry.objects.filter(action="build.trigger", target_id=row.build_id).exists()


@pytest.mark.django_db(transaction=True)
def test_statuses_follow_the_build_and_a_rollback_makes_an_older_build_current(
    render, image_service, three_deploys
):
    old, new, failed = three_deploys
    assert statuses(render, image_service) == {
        old.id: DeployStatus.DEACTIVATED,
        new.id: DeployStatus.LIVE,
        failed.id: DeployStatus.BUILD_FAILED,
    }
    before = create_job(image_service, "echo before")
    assert before.build_id == new.build_id

    back = rollback_deploy.sync_detailed(
        image_service.id, client=render, body=RollbackDeployBody(deploy_id=old.id)
    )
    assert back.status_code == 201, back.content
    rollback = back.parsed
    assert isinstance(rollback, Deploy), back.content
    assert rollback.id not in (old.id, new.id)
    assert (rollback.status, rollback.trigger) == (DeployStatus.LIVE, DeployTrigger.ROLLBACK)
    assert rollback.build_id == old.build_id
    assert rollback["rollbackOf"] == old.id
    assert rollback.started_at == rollback.finished_at == rollback.created_at
    assert statuses(render, image_service) == {
        rollback.id: DeployStatus.LIVE,
        old.id: DeployStatus.DEACTIVATED,
        new.id: DeployStatus.DEACTIVATED,
        failed.id: DeployStatus.BUILD_FAILED,
    }
    # New jobs run the build rolled back to; a job created before keeps its own.
    after = create_job(image_service, "echo after")
    assert after.build_id == old.build_id
    before.refresh_from_db()
    assert before.build_id == new.build_id
    entry = AuditEntry.objects.get(action="deploy.create", target_id=rollback.id)
    assert entry.metadata["trigger"] == "rollback"
    assert entry.metadata["rollbackOf"] == old.id

    # A failed deploy cannot be rolled back to; a later successful build takes over again.
    refused = rollback_deploy.sync_detailed(
        image_service.id, client=render, body=RollbackDeployBody(deploy_id=failed.id)
    )
    assert refused.status_code == 400, refused.content
    assert refused.parsed.message.startswith("deployId:")
    later = builds.request_deploy(image_service)
    finish(later)
    assert image_service.current_build().id == later.build_id
    assert statuses(render, image_service)[later.id] == DeployStatus.LIVE
    assert statuses(render, image_service)[rollback.id] == DeployStatus.DEACTIVATED


@pytest.mark.django_db(transaction=True)
def test_deploying_an_existing_build_by_id_or_deploy_only(render, image_service, three_deploys):
    old = three_deploys[0]
    by_id = create_deploy.sync(
        image_service.id, client=render, body=CreateDeployBody(build_id=old.build_id)
    )
    assert isinstance(by_id, Deploy), by_id
    assert (by_id.status, by_id.trigger, by_id.build_id) == (
        DeployStatus.LIVE,
        DeployTrigger.API,
        old.build_id,
    )
    assert image_service.current_build().id == old.build_id
    assert Build.objects.count() == 3  # nothing was built

    again = create_deploy.sync(
        image_service.id, client=render, body=CreateDeployBody(deploy_mode=DeployMode.DEPLOY_ONLY)
    )
    assert (again.status, again.build_id) == (DeployStatus.LIVE, old.build_id)
    assert statuses(render, image_service)[by_id.id] == DeployStatus.DEACTIVATED


@pytest.mark.django_db(transaction=True)
def test_renders_client_filters_deploys(render, image_service, three_deploys):
    old, new, failed = three_deploys
    wanted = [DeployStatus.LIVE, DeployStatus.BUILD_FAILED]
    listed = list_deploys.sync(image_service.id, client=render, status=wanted)
    assert {item.deploy.id for item in listed} == {new.id, failed.id}
    stamp = timezone.now() - timedelta(minutes=3)
    finished_before = list_deploys.sync(image_service.id, client=render, finished_before=stamp)
    assert {item.deploy.id for item in finished_before} == {old.id, new.id}
    finished_after = list_deploys.sync(image_service.id, client=render, finished_after=stamp)
    assert {item.deploy.id for item in finished_after} == {failed.id}
    updated_after = list_deploys.sync(image_service.id, client=render, updated_after=stamp)
    assert {item.deploy.id for item in updated_after} == {failed.id}
    created = list_deploys.sync(
        image_service.id, client=render, created_before=timezone.now() + timedelta(minutes=1)
    )
    assert len(created) == 3
    none = list_deploys.sync(
        image_service.id, client=render, created_after=timezone.now() + timedelta(minutes=1)
    )
    assert none == []
    # Pages: newest first, by cursor.
    first = list_deploys.sync(image_service.id, client=render, limit=2)
    rest = list_deploys.sync(image_service.id, client=render, limit=2, cursor=first[-1].cursor)
    assert [i.deploy.id for i in first + rest] == [failed.id, new.id, old.id]


@pytest.mark.django_db(transaction=True)
def test_service_create_answers_its_first_deploy(render, workspace):
    body = ServicePOST(
        type_=ServiceType.WEB_SERVICE,
        name="first",
        owner_id=workspace.id,
        service_details=WebServiceDetailsPOST(),
        image=Image(owner_id=workspace.id, image_path=IMAGE),
    )
    made = create_service.sync_detailed(client=render, body=body)
    assert made.status_code == 201, made.content
    assert isinstance(made.parsed, ServiceAndDeploy)
    deploy_id = made.parsed.deploy_id
    assert deploy_id.startswith("dep-")
    assert made.parsed["buildId"] == DeployRow.objects.get(pk=deploy_id).build_id
    deploy = retrieve_deploy.sync(made.parsed.service.id, deploy_id, client=render)
    assert isinstance(deploy, Deploy), deploy
    assert deploy.status == DeployStatus.QUEUED


# The /builds alias, 400s, isolation and roles -----------------------------------------------


def test_builds_stay_an_alias_of_the_same_builds(owner_api, image_service):
    made = owner_api.post(f"/v1/services/{image_service.id}/builds")
    assert made.status_code == 201, made.content
    build_id = made.json()["id"]
    listed = owner_api.get(f"/v1/services/{image_service.id}/deploys").json()
    assert [item["deploy"]["buildId"] for item in listed] == [build_id]
    deployed = owner_api.post(f"/v1/services/{image_service.id}/deploys").json()
    builds_listed = owner_api.get(f"/v1/services/{image_service.id}/builds").json()
    assert deployed["buildId"] in {item["build"]["id"] for item in builds_listed}


def test_webhook_deploy_events_name_the_deploy(image_service, workspace):
    from services.transitions import transition
    from webhooks.models import Event, Webhook

    Webhook.objects.create(
        workspace=workspace, name="ci", url="https://hooks.example.test/", event_filter=[]
    )
    deploy = builds.request_deploy(image_service)
    transition(
        Build.objects.filter(pk=deploy.build_id),
        status=BuildStatus.SUCCEEDED,
        finished_at=timezone.now(),
    )
    ended = Event.objects.get(type="deploy_ended")
    assert (ended.details["deployId"], ended.details["buildId"]) == (deploy.id, deploy.build_id)


def test_a_build_made_before_deploys_still_runs_jobs(image_service, make_build):
    build = make_build(image_service)  # no deploy records it
    assert image_service.current_deploy() == (build, None)
    assert create_job(image_service, "echo").build_id == build.id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"bogus": 1}, "bogus"),
        ({"commitId": "abc123"}, "commitId"),
        ({"clearCache": "sometimes"}, "clearCache"),
        ({"deployMode": "later"}, "deployMode"),
        ({"buildId": "bld-00000000000000000000"}, "buildId"),
        ({"deployMode": "deploy_only", "clearCache": "clear"}, "clearCache"),
        ({"deployMode": "deploy_only", "imageUrl": IMAGE}, "imageUrl"),
    ],
)
def test_a_bad_create_field_is_a_400_naming_it(
    owner_api, image_service, three_deploys, body, field
):
    before = DeployRow.objects.count()
    assert_error(owner_api.post(f"/v1/services/{image_service.id}/deploys", body), 400, field=field)
    assert DeployRow.objects.count() == before


def test_build_id_cannot_be_combined_with_a_build_field(owner_api, image_service, three_deploys):
    old = three_deploys[0]
    body = {"buildId": old.build_id, "imageUrl": IMAGE}
    assert_error(
        owner_api.post(f"/v1/services/{image_service.id}/deploys", body), 400, field="imageUrl"
    )


def test_image_url_on_a_repo_service_is_a_400(owner_api, make_service):
    repo = make_service(name="repo", repo_url="https://example.test/r.git", branch="main")
    response = owner_api.post(f"/v1/services/{repo.id}/deploys", {"imageUrl": IMAGE})
    assert_error(response, 400, field="imageUrl")


def test_clear_cache_is_honoured_as_every_build_starts_clean(owner_api, image_service):
    body = {"clearCache": "clear"}
    response = owner_api.post(f"/v1/services/{image_service.id}/deploys", body)
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "nope"}, "status"),
        ({"status": "live,nope"}, "status"),
        ({"region": "oregon"}, "region"),
        ({"createdBefore": "yesterday"}, "createdBefore"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_a_bad_list_parameter_is_a_400_naming_it(owner_api, image_service, params, field):
    response = owner_api.get(f"/v1/services/{image_service.id}/deploys", params)
    assert_error(response, 400, field=field)


def test_rollback_needs_a_deploy_of_this_service(owner_api, image_service, make_service):
    assert_error(
        owner_api.post(f"/v1/services/{image_service.id}/rollback", {}), 400, field="deployId"
    )
    other = make_service(name="other", image_ref=IMAGE)
    theirs = builds.request_deploy(other)
    finish(theirs)
    body = {"deployId": theirs.id}
    assert_error(
        owner_api.post(f"/v1/services/{image_service.id}/rollback", body), 400, field="deployId"
    )


def test_cancel_of_a_finished_deploy_is_a_400(owner_api, image_service, three_deploys):
    old = three_deploys[0]
    response = owner_api.post(f"/v1/services/{image_service.id}/deploys/{old.id}/cancel")
    assert_error(response, 400, field="deployId")
    assert "deactivated" in response.json()["message"]


def endpoints(service, deploy):
    base = f"/v1/services/{service.id}"
    return {
        "list": ("GET", f"{base}/deploys", None),
        "retrieve": ("GET", f"{base}/deploys/{deploy.id}", None),
        "create": ("POST", f"{base}/deploys", {}),
        "cancel": ("POST", f"{base}/deploys/{deploy.id}/cancel", None),
        "rollback": ("POST", f"{base}/rollback", {"deployId": deploy.id}),
    }


def test_another_workspaces_admin_gets_404_everywhere(outsider_api, image_service):
    queued = builds.request_deploy(image_service)
    for method, path, body in endpoints(image_service, queued).values():
        response = outsider_api.request(method, path, body)
        assert_error(response, 404)
    assert DeployRow.objects.count() == 1
    assert Build.objects.get(pk=queued.build_id).status == BuildStatus.QUEUED


def test_a_viewer_reads_but_cannot_deploy_cancel_or_roll_back(
    viewer_api, developer_api, image_service, three_deploys
):
    queued = builds.request_deploy(image_service)
    calls = endpoints(image_service, queued)
    for name in ("list", "retrieve"):
        method, path, body = calls[name]
        assert viewer_api.request(method, path, body).status_code == 200, name
    old = three_deploys[0]
    calls["rollback"] = ("POST", f"/v1/services/{image_service.id}/rollback", {"deployId": old.id})
    for name in ("create", "cancel", "rollback"):
        method, path, body = calls[name]
        assert_error(viewer_api.request(method, path, body), 403)
    assert DeployRow.objects.count() == 4
    assert Build.objects.get(pk=queued.build_id).status == BuildStatus.QUEUED
    # A developer may (they build and run jobs).
    method, path, body = calls["rollback"]
    assert developer_api.request(method, path, body).status_code == 201
    method, path, body = calls["cancel"]
    assert developer_api.request(method, path, body).json()["status"] == "canceled"


# Real builds, a real worker and the engine --------------------------------------------------

DOCKERFILE = f"FROM {BASE}\nCOPY mark.txt /mark.txt\n"


@pytest.fixture
def worker_repos(settings, live_worker):
    """Repositories where the live builds worker clones from (its BUILD_LOCAL_REPOS_DIR)."""
    settings.BUILD_LOCAL_REPOS_DIR = live_worker.var_dir / "repos"
    yield settings.BUILD_LOCAL_REPOS_DIR
    import docker

    client = docker.from_env(timeout=30)
    for tag in Build.objects.exclude(image_tag="").values_list("image_tag", flat=True):
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(tag)


def live(render, service, deploy_id: str) -> Deploy:
    def done():
        got = retrieve_deploy.sync(service.id, deploy_id, client=render)
        return (
            got if got.status not in (DeployStatus.QUEUED, DeployStatus.BUILD_IN_PROGRESS) else None
        )

    deploy = wait_for(done, 120, 0.5, f"deploy {deploy_id} to finish building")
    assert deploy.status == DeployStatus.LIVE, (
        deploy.to_dict(),
        Build.objects.get(pk=deploy.build_id).reason,
    )
    return deploy


def output(job: Job) -> list[str]:
    job = wait_finished(job, 60)
    assert job.status == JobStatus.SUCCEEDED, (job.status, job.reason)
    return list(job.log_lines.order_by("seq").values_list("text", flat=True))


@pytest.mark.docker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_rollback_runs_new_jobs_on_the_older_image_and_keeps_earlier_jobs_on_theirs(
    render, owner_api, worker_repos, busybox_image, workspace, make_service, docker_client
):
    repo = Repo(worker_repos / workspace.id / "marked")
    first_commit = repo.commit({"Dockerfile": DOCKERFILE, "mark.txt": "one\n"}, "One")
    service = make_service(name="marked", repo_url=repo.url, branch="main")

    one = create_deploy.sync(service.id, client=render, body=CreateDeployBody())
    one = live(render, service, one.id)
    assert one.commit.id == first_commit
    assert one.commit.message == "One"
    repo.commit({"mark.txt": "two\n"}, "Two")
    two = create_deploy.sync(
        service.id,
        client=render,
        body=CreateDeployBody(clear_cache=CreateDeployBodyClearCache.CLEAR),
    )
    two = live(render, service, two.id)
    assert (
        retrieve_deploy.sync(service.id, one.id, client=render).status == DeployStatus.DEACTIVATED
    )

    # A job created before the rollback: it waits a moment, then prints its image's mark.
    made = owner_api.post(
        f"/v1/services/{service.id}/jobs", {"startCommand": "sleep 2; cat /mark.txt"}
    )
    assert made.status_code == 201, made.content
    before = Job.objects.get(pk=made.json()["id"])

    rolled = rollback_deploy.sync(
        service.id, client=render, body=RollbackDeployBody(deploy_id=one.id)
    )
    assert (rolled.status, rolled.trigger) == (DeployStatus.LIVE, DeployTrigger.ROLLBACK)
    # Image cleanup keeps the build rolled back to, though newer builds exist and no job used it.
    one_build = Build.objects.get(pk=one.build_id)
    assert one_build.image_tag not in builds.cleanup_images(client=docker_client, keep=1)

    made = owner_api.post(f"/v1/services/{service.id}/jobs", {"startCommand": "cat /mark.txt"})
    assert made.status_code == 201, made.content
    after = Job.objects.get(pk=made.json()["id"])

    assert output(after) == ["one"]
    assert output(before) == ["two"]
    assert (before.build_id, after.build_id) == (two.build_id, one.build_id)
    assert Build.objects.get(pk=one.build_id).image_removed_at is None


def test_another_services_build_or_deploy_cannot_be_made_this_ones(
    owner_api, outsider_api, image_service, three_deploys, make_service, make_build, other_workspace
):
    """An admin naming another workspace's (or another service's) build in ``buildId``, or its
    deploy in a rollback, would run that image with their own env vars: refused, nothing made."""
    theirs = make_service(other_workspace, name="theirs", image_ref=IMAGE)
    their_build = make_build(theirs)
    sibling_build = make_build(make_service(name="sibling", image_ref=IMAGE))
    before = DeployRow.objects.count()
    # Another workspace's build, then another service's of the same workspace.
    mine = outsider_api.post(
        f"/v1/services/{theirs.id}/deploys", {"buildId": three_deploys[0].build_id}
    )
    assert mine.status_code in (400, 404), mine.content
    sibling = owner_api.post(
        f"/v1/services/{image_service.id}/deploys", {"buildId": sibling_build.id}
    )
    assert sibling.status_code in (400, 404), sibling.content
    rollback = outsider_api.post(
        f"/v1/services/{theirs.id}/rollback", {"deployId": three_deploys[0].id}
    )
    assert_error(rollback, 400, field="deployId")
    assert DeployRow.objects.count() == before
    assert theirs.current_deploy()[0] == their_build
    assert image_service.current_deploy()[0].service_id == image_service.id

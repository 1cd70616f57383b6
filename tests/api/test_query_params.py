"""Query parameters as Render's clients send them: arrays as repeated keys or comma lists (or
both), and no filter silently ignored: one an operation does not take is a 400 naming it."""

import pytest
from render.public_api.api.one_off_jobs import list_job
from render.public_api.api.services import list_services
from render.public_api.models import JobStatus as RenderJobStatus
from render.public_api.models import JobWithCursor

from jobs.models import JobStatus
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs(make_job):
    return {status: make_job(status=status) for status in JobStatus}


def listed(api, path, query: str) -> set[str]:
    response = api.get(f"{path}?{query}")
    assert response.status_code == 200, response.content
    items = response.json()
    return {next(iter(item.values()))["id"] for item in items}


def test_job_status_takes_repeated_keys_comma_lists_and_both(viewer_api, service, jobs):
    path = f"/v1/services/{service.id}/jobs"
    want = {jobs[JobStatus.FAILED].id, jobs[JobStatus.CANCELED].id}
    # Before, the repeated form kept only the last value: a partial list with a 200.
    assert listed(viewer_api, path, "status=failed&status=canceled") == want
    assert listed(viewer_api, path, "status=failed,canceled") == want
    assert listed(viewer_api, path, "status=failed,canceled&status=pending") == want | {
        jobs[JobStatus.PENDING].id
    }
    assert_error(viewer_api.get(f"{path}?status=failed&status=done"), 400, field="status")


@pytest.mark.django_db(transaction=True)
def test_renders_client_filters_jobs_by_several_statuses(render, jobs):
    service = jobs[JobStatus.FAILED].service
    got = list_job.sync(
        service.id,
        client=render,
        status=[RenderJobStatus.FAILED, RenderJobStatus.SUCCEEDED],
    )
    assert all(isinstance(item, JobWithCursor) for item in got), got
    assert {item.job.id for item in got} == {
        jobs[JobStatus.FAILED].id,
        jobs[JobStatus.SUCCEEDED].id,
    }
    names = list_services.sync(client=render, name=[service.name, "nope"], limit=10)
    assert [item.service.id for item in names] == [service.id]


@pytest.mark.parametrize(
    ("path", "query", "name"),
    [
        ("/v1/services", "environmentId=evm-1", "environmentId"),
        ("/v1/services", "limit=5&nmae=web", "nmae"),
        ("/v1/services/{service}/jobs", "instance=srv-1-abc", "instance"),
        ("/v1/owners", "team=x", "team"),
        ("/v1/webhooks", "eventType=job_run_ended", "eventType"),
        ("/v1/registrycredentials", "region=oregon", "region"),
        ("/v1/services/{service}/env-vars", "key=DEBUG", "key"),
        ("/v1/logs", "ownerId={owner}&resource={job}&statusCode=500", "statusCode"),
        ("/v1/logs", "ownerId={owner}&resource={job}&method=GET", "method"),
        ("/v1/logs", "ownerId={owner}&resource={job}&host=x", "host"),
    ],
)
def test_a_filter_an_operation_does_not_take_is_a_400_naming_it(
    viewer_api, service, workspace, jobs, path, query, name
):
    job = jobs[JobStatus.SUCCEEDED]
    values = {"service": service.id, "owner": workspace.id, "job": job.id}
    response = viewer_api.get(path.format(**values) + "?" + query.format(**values))
    body = assert_error(response, 400, field=name)
    assert "cannot honour" in body["message"]


def test_renders_service_filters_that_mean_something_here_are_applied(
    viewer_api, make_service, settings
):
    built = make_service(name="built", repo_url="https://example.com/x.git", branch="main")
    pulled = make_service(name="pulled", image_ref="docker.io/library/busybox:1.36")
    assert listed(viewer_api, "/v1/services", "env=image") == {pulled.id}
    assert listed(viewer_api, "/v1/services", "env=docker") == {built.id}
    assert listed(viewer_api, "/v1/services", "env=docker&env=image") == {built.id, pulled.id}
    assert listed(viewer_api, "/v1/services", "env=node") == set()
    settings.REGION = "frankfurt"
    assert listed(viewer_api, "/v1/services", "region=frankfurt") == {built.id, pulled.id}
    assert listed(viewer_api, "/v1/services", "region=oregon") == set()
    assert listed(viewer_api, "/v1/services", "includePreviews=true") == {built.id, pulled.id}
    after = pulled.updated_at.isoformat().replace("+00:00", "Z")
    assert listed(viewer_api, "/v1/services", f"updatedAfter={after}") == {pulled.id}


def test_owner_filters_by_name_and_email(viewer_api, workspace):
    assert listed(viewer_api, "/v1/owners", f"name={workspace.name}") == {workspace.id}
    assert listed(viewer_api, "/v1/owners", f"email=x@y.z,{workspace.email}") == {workspace.id}
    assert listed(viewer_api, "/v1/owners", "name=Someone+else") == set()

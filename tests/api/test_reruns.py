"""Reruns through the API (``rerunOf``, ``exact``): what a rerun takes from its original, the 400
naming each wrong field, and that a job of another service or workspace is no original. The run
itself, on the real engine, is in test_rerun_live.py."""

import pytest
from django.utils import timezone

from jobs.launch import create_job
from jobs.models import Job
from services.models import EnvVar
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def original(built_service, owner):
    return create_job(
        built_service,
        "python manage.py migrate",
        "plan-srv-008",
        user=owner,
        timeout_seconds=60,
        env_overrides=[("ONLY_THIS_RUN", "one-time-value")],
    )


def post(api, service, **body):
    return api.post(f"/v1/services/{service.id}/jobs", body)


def test_on_latest_takes_the_originals_command_plan_timeout_and_overrides(
    developer_api, built_service, original, make_build
):
    newer = make_build(built_service, image_id="sha256:" + "1" * 64)
    EnvVar.objects.filter(service=built_service, key="DEBUG").update(value="1")
    r = post(developer_api, built_service, rerunOf=original.id)
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["rerunOf"], body["exact"]) == (original.id, False)
    assert (body["startCommand"], body["planId"], body["timeoutSeconds"]) == (
        "python manage.py migrate",
        "plan-srv-008",
        60,
    )
    job = Job.objects.get(pk=body["id"])
    assert job.build == newer
    assert job.env_snapshot.values["DEBUG"] == "1"
    assert job.env_snapshot.values["ONLY_THIS_RUN"] == "one-time-value"


def test_exact_takes_the_originals_build_and_snapshot_and_given_fields_win(
    owner_api, built_service, original, make_build
):
    make_build(built_service, image_id="sha256:" + "1" * 64)
    EnvVar.objects.filter(service=built_service, key="DEBUG").update(value="1")
    r = post(owner_api, built_service, rerunOf=original.id, exact=True, startCommand="echo again")
    assert r.status_code == 201, r.content
    job = Job.objects.get(pk=r.json()["id"])
    assert (job.build_id, job.env_snapshot_id) == (original.build_id, original.env_snapshot_id)
    assert r.json()["envDigest"] == original.env_snapshot.digest
    assert r.json()["envVarOverrides"] == ["ONLY_THIS_RUN"]
    assert (job.start_command, job.plan_id, job.exact) == ("echo again", "plan-srv-008", True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"exact": True, "startCommand": "true"}, "exact"),
        ({"rerunOf": "job-" + "0" * 20}, "rerunOf"),
        ({"rerunOf": 5}, "rerunOf"),
        ({"rerunOf": "ORIGINAL", "exact": "yes"}, "exact"),
        (
            {"rerunOf": "ORIGINAL", "exact": True, "envVars": [{"key": "A", "value": "b"}]},
            "envVars",
        ),
        ({"planId": "plan-srv-008"}, "startCommand"),
    ],
)
def test_a_wrong_field_is_a_400_naming_it(owner_api, built_service, original, body, field):
    body = {k: original.id if v == "ORIGINAL" else v for k, v in body.items()}
    assert_error(post(owner_api, built_service, **body), 400, field=field)
    assert Job.objects.count() == 1


def test_a_job_of_another_service_or_workspace_is_no_original(
    owner_api, outsider_api, built_service, original, make_service, make_build, other_workspace
):
    sibling = make_service(name="sibling")
    make_build(sibling)
    assert_error(post(owner_api, sibling, rerunOf=original.id, exact=True), 400, field="rerunOf")
    theirs = make_service(other_workspace, name="theirs")
    make_build(theirs)
    # Another workspace's admin names our job on their own service: the same 400 as a job that
    # does not exist (nothing says it exists), and nothing of ours runs.
    r = post(outsider_api, theirs, rerunOf=original.id, exact=True)
    assert_error(r, 400, field="rerunOf")
    assert "is not a job of this service" in r.json()["message"]
    assert Job.objects.count() == 1


def test_viewer_and_read_only_key_cannot_rerun(viewer_api, readonly_api, built_service, original):
    for api in (viewer_api, readonly_api):
        assert_error(post(api, built_service, rerunOf=original.id, exact=True), 403)
    assert Job.objects.count() == 1


def test_exact_is_refused_once_the_image_was_removed(owner_api, built_service, original):
    original.build.image_removed_at = timezone.now()
    original.build.save()
    r = post(owner_api, built_service, rerunOf=original.id, exact=True)
    message = assert_error(r, 400)["message"]
    assert f"image of its build {original.build_id} was removed" in message
    assert post(owner_api, built_service, rerunOf=original.id).status_code == 201

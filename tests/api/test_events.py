"""A service's events (``GET /v1/services/{serviceId}/events``) read with Render's own Python client
(PyPI ``render``): every answer parses, and each event's details parse strictly as Render's model
for its type (a missing field is a ``KeyError``, an enum out of range a ``ValueError``). A real
build and a real job (the Docker Engine, Celery workers) write theirs; suspend and resume through
the API; the ``type`` filter in both array forms, time bounds, cursors, isolation, roles and
retention."""

import json
import re
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from render.public_api.api.events import retrieve_event
from render.public_api.api.one_off_jobs import post_job
from render.public_api.api.services import list_events, resume_service, suspend_service
from render.public_api.models import (
    BuildEnded,
    BuildStarted,
    DeployEnded,
    DeployStarted,
    EventStatus,
    JobRunEnded,
    JobStatus,
    PostJobBody,
    ServiceEventType,
    ServiceEventWithCursor,
    ServiceResumed,
    ServiceSuspended,
)
from render.public_api.types import UNSET

from jobs import launch, runner
from jobs.models import Job
from jobs.tasks import purge_expired_logs
from services import events
from services.builds import queue as builds
from services.models import BUILD_FINISHED, Build, BuildStatus, ServiceEvent, Workspace
from services.transitions import transition
from tests.helpers import BASE, assert_error, render_client, wait_finished, wait_for

DETAILS = {
    "job_run_ended": JobRunEnded,
    "build_started": BuildStarted,
    "build_ended": BuildEnded,
    "deploy_started": DeployStarted,
    "deploy_ended": DeployEnded,
    "service_suspended": ServiceSuspended,
    "service_resumed": ServiceResumed,
}
TRIGGER_FLAGS = ("firstBuild", "envUpdated", "manual", "deployedByRender", "clearCache", "rollback")


def listed(client, service_id: str, **params) -> list[tuple[str, object, dict]]:
    """Render's client lists the events: (type, its details parsed strictly as Render's model
    for the type, the raw details), newest first."""
    response = list_events.sync_detailed(service_id, client=client, **params)
    assert response.status_code == 200, response.content
    assert all(isinstance(item, ServiceEventWithCursor) for item in response.parsed)
    raw = json.loads(response.content)
    out = []
    for item, data in zip(response.parsed, raw, strict=True):
        event = item.event
        assert re.fullmatch(r"evt-[0-9a-v]{20}", event.id)
        assert event.service_id == service_id
        details = data["event"]["details"]
        model = DETAILS[event.type_.value].from_dict(details)
        # The fields from_dict takes without looking: the right JSON types too.
        if "trigger" in details:
            assert all(isinstance(details["trigger"][flag], bool) for flag in TRIGGER_FLAGS)
        if "status" in details and event.type_.value in ("build_ended", "deploy_ended"):
            assert isinstance(details["status"], int)
        if isinstance(details.get("reason"), dict) and event.type_.value == "job_run_ended":
            assert isinstance(details["reason"]["evicted"], bool)
        out.append((event.type_.value, model, details))
    return out


def types_of(client, service_id: str, **params) -> list[str]:
    return [kind for kind, _, _ in listed(client, service_id, **params)]


# A real build and a real job.


@pytest.mark.docker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_build_and_a_job_that_exits_3_as_renders_client_reads_them(
    live_worker, render, owner_api, make_service, busybox_image
):
    service = make_service(name="events", image_ref=BASE)
    made = owner_api.post(f"/v1/services/{service.id}/builds")
    assert made.status_code == 201, made.content
    build_id = made.json()["id"]
    build = wait_for(
        lambda: Build.objects.filter(pk=build_id, status__in=BUILD_FINISHED).first(),
        90,
        0.1,
        "the build to finish",
    )
    assert build.status == BuildStatus.SUCCEEDED, build.reason

    job = post_job.sync(service.id, client=render, body=PostJobBody(start_command="exit 3"))
    job = wait_finished(Job.objects.get(pk=job.id), 60)
    assert (job.status, job.exit_code) == ("failed", 3)

    (ended, built, started) = listed(render, service.id)
    assert ended[0] == "job_run_ended"
    run = ended[1]
    assert run.job_id == job.id
    assert run.status == JobStatus.FAILED
    assert run.reason is not UNSET
    assert run.reason.non_zero_exit == 3
    assert run.reason.evicted is False
    assert ended[2]["exitCode"] == 3

    assert built[0] == "build_ended"
    assert built[1].build_id == build.id
    assert built[1].build_status == EventStatus.SUCCEEDED
    assert built[1].reason.to_dict() == {}
    assert started[0] == "build_started"
    assert started[1].build_id == build.id
    assert started[1].trigger.first_build is True
    assert started[1].trigger.manual is False

    # A build that fails says which and why.
    failing = owner_api.post(
        f"/v1/services/{service.id}/builds", {"imageUrl": "127.0.0.1:9/none:1"}
    )
    assert failing.status_code == 201, failing.content
    failed_id = failing.json()["id"]
    wait_for(
        lambda: Build.objects.filter(pk=failed_id, status=BuildStatus.FAILED).exists(),
        90,
        0.1,
        "the build to fail",
    )
    newest = listed(render, service.id, type_=ServiceEventType.BUILD_ENDED)
    assert [kind for kind, _, _ in newest] == ["build_ended", "build_ended"]
    _, failed, raw = newest[0]
    assert failed.build_id == failed_id
    assert failed.build_status == EventStatus.FAILED
    assert failed.reason.build_failed.id == failed_id
    assert raw["message"]
    _, second, _ = listed(render, service.id, type_=ServiceEventType.BUILD_STARTED)[0]
    assert second.trigger.first_build is False
    assert second.trigger.manual is True  # a later build a person asked for


# Suspend and resume through the API.


@pytest.mark.django_db(transaction=True)
def test_suspend_and_resume_through_renders_client(render, service):
    assert suspend_service.sync_detailed(service.id, client=render).status_code == 202
    assert suspend_service.sync_detailed(service.id, client=render).status_code == 202  # no change
    assert resume_service.sync_detailed(service.id, client=render).status_code == 202

    assert types_of(render, service.id) == ["service_resumed", "service_suspended"]
    assert types_of(render, service.id, type_=ServiceEventType.SERVICE_SUSPENDED) == [
        "service_suspended"
    ]


@pytest.mark.django_db(transaction=True)
def test_deploy_events_emitted_with_the_shared_shapes_parse_as_renders(render, service):
    """What a deploy's code calls: ``emit`` with ``trigger(...)`` and ``end_reason(...)``."""
    events.emit(
        service,
        "deploy_started",
        deployId="dep-1",
        buildId="bld-1",
        trigger=events.trigger(rollback=True, rollback_target_deploy_id="dep-0"),
    )
    events.emit(
        service,
        "deploy_ended",
        deployId="dep-1",
        buildId="bld-1",
        deployStatus="succeeded",
        reason=events.end_reason(),
        status=events.LEGACY_STATUS["succeeded"],
    )
    events.emit(
        service,
        "deploy_ended",
        deployId="dep-2",
        deployStatus="failed",
        reason=events.end_reason(build_failed="bld-2"),
        status=events.LEGACY_STATUS["failed"],
    )
    (failed, ended, started) = listed(render, service.id)
    assert failed[1].deploy_status == EventStatus.FAILED
    assert failed[1].reason.build_failed.id == "bld-2"
    assert (ended[1].deploy_id, ended[1].build_id) == ("dep-1", "bld-1")
    assert ended[1].deploy_status == EventStatus.SUCCEEDED
    assert started[1].trigger.rollback is True
    assert started[1].trigger.rollback_target_deploy_id == "dep-0"


# Jobs and builds that end without a runner (the same transition).


@pytest.mark.django_db
def test_a_canceled_job_tells_who_and_its_events_outlive_the_job_and_build(
    owner_api, service, build, make_job, owner
):
    job = make_job(status="pending")
    launch.cancel_job(job, user=owner)
    failed = make_job(status="running")
    runner.fail_start(failed.id, "no such image", from_status="running")
    succeeded = make_job(status="running")
    transition(Job.objects.filter(pk=succeeded.pk), status="succeeded", exit_code=0, reason={})

    body = owner_api.get(f"/v1/services/{service.id}/events").json()
    assert [item["event"]["type"] for item in body] == ["job_run_ended"] * 3
    exited_0, start_error, canceled = (item["event"]["details"] for item in body)
    assert exited_0 == {"jobId": succeeded.id, "status": "succeeded", "exitCode": 0}
    assert JobRunEnded.from_dict(exited_0).reason is UNSET
    assert canceled == {
        "jobId": job.id,
        "status": "canceled",
        "reason": {"canceledBy": "alice@acme.test", "evicted": False},
    }
    assert JobRunEnded.from_dict(canceled).status == JobStatus.CANCELED
    assert start_error["reason"] == {"startError": "no such image", "evicted": False}
    assert JobRunEnded.from_dict(start_error).reason.evicted is False

    # The jobs and their build deleted: their events stay.
    Job.objects.all().delete()
    Build.objects.all().delete()
    again = owner_api.get(f"/v1/services/{service.id}/events").json()
    assert again == body


@pytest.mark.django_db
def test_a_build_canceled_in_the_queue_ends_without_starting(owner_api, service, owner):
    service.image_ref = BASE
    service.save()
    with transaction.atomic():
        build = builds.request_build(service, user=owner)
    builds.cancel_build(build, user=owner)

    (item,) = owner_api.get(f"/v1/services/{service.id}/events").json()
    details = item["event"]["details"]
    assert item["event"]["type"] == "build_ended"
    assert details["buildStatus"] == "canceled"
    assert details["reason"] == {}
    assert details["message"] == "Canceled by alice@acme.test."
    assert BuildEnded.from_dict(details).build_status == EventStatus.CANCELED


@pytest.mark.django_db
def test_a_failing_receiver_never_stops_the_change(service, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(events, "emit", broken)
    assert transition(type(service).objects.filter(pk=service.pk), suspended=True) == 1
    service.refresh_from_db()
    assert service.suspended
    assert not ServiceEvent.objects.exists()


# The list: filters, cursors, isolation, roles.


def emit_several(service, count: int) -> list[ServiceEvent]:
    """``count`` events, alternating suspended and resumed, oldest first, a second apart."""
    start = timezone.now() - timedelta(minutes=10)
    made = []
    for i in range(count):
        event = events.emit(service, "service_suspended" if i % 2 == 0 else "service_resumed")
        ServiceEvent.objects.filter(pk=event.pk).update(created_at=start + timedelta(seconds=i))
        made.append(ServiceEvent.objects.get(pk=event.pk))
    return made


@pytest.mark.django_db
def test_the_type_filter_takes_repeated_keys_and_comma_lists(owner_api, service):
    events.emit(service, "job_run_ended", jobId="job-x", status="succeeded")
    events.emit(service, "build_started", buildId="bld-x", trigger=events.trigger())
    events.emit(service, "service_suspended")
    path = f"/v1/services/{service.id}/events"

    def types(params) -> list[str]:
        response = owner_api.get(path, params)
        assert response.status_code == 200, response.content
        return [item["event"]["type"] for item in response.json()]

    assert types({}) == ["service_suspended", "build_started", "job_run_ended"]
    assert types({"type": ["job_run_ended", "service_suspended"]}) == [
        "service_suspended",
        "job_run_ended",
    ]
    assert types({"type": "job_run_ended,build_started"}) == ["build_started", "job_run_ended"]
    assert types({"type": ["job_run_ended,build_started", "service_suspended"]}) == [
        "service_suspended",
        "build_started",
        "job_run_ended",
    ]
    assert types({"type": "deploy_ended"}) == []  # one of Render's: nothing of it yet


@pytest.mark.django_db
def test_a_type_that_is_not_renders_is_a_400_naming_it(owner_api, service):
    path = f"/v1/services/{service.id}/events"
    body = assert_error(owner_api.get(path, {"type": "job_run_ended,job_ended"}), 400, field="type")
    assert "'job_ended'" in body["message"]
    # A parameter the operation does not take: a 400 naming it, never ignored.
    assert_error(owner_api.get(path, {"eventType": "job_run_ended"}), 400, field="eventType")
    assert_error(owner_api.get(path, {"cursor": "nonsense"}), 400, field="cursor")


@pytest.mark.django_db
def test_start_and_end_time_bound_the_list(owner_api, service):
    made = emit_several(service, 5)
    path = f"/v1/services/{service.id}/events"
    params = {
        "startTime": made[1].created_at.isoformat(),
        "endTime": made[4].created_at.isoformat(),
    }
    ids = [item["event"]["id"] for item in owner_api.get(path, params).json()]
    assert ids == [made[3].id, made[2].id, made[1].id]


@pytest.mark.django_db(transaction=True)
def test_cursors_page_through_without_overlap(render, service):
    made = emit_several(service, 7)
    seen: list[str] = []
    cursor = UNSET
    while True:
        response = list_events.sync_detailed(service.id, client=render, limit=3, cursor=cursor)
        page = response.parsed
        assert len(page) <= 3
        seen += [item.event.id for item in page]
        if len(page) < 3:
            break
        cursor = page[-1].cursor
    assert seen == [event.id for event in reversed(made)]
    assert len(set(seen)) == 7


@pytest.mark.django_db(transaction=True)
def test_a_viewer_reads_them_and_another_workspaces_admin_gets_a_404(
    live_server, viewer, workspace, outsider, other_workspace, service
):
    event = events.emit(service, "service_suspended")
    with render_client(live_server, viewer, workspace) as client:
        assert types_of(client, service.id) == ["service_suspended"]
        one = retrieve_event.sync(event.id, client=client)
        assert (one.id, one.service_id, one.type_) == (event.id, service.id, "service_suspended")
    with render_client(live_server, outsider, other_workspace) as client:
        theirs = retrieve_event.sync_detailed(event.id, client=client)
        nothing = retrieve_event.sync_detailed("evt-" + "0" * 20, client=client)
        assert (theirs.status_code, theirs.content) == (404, nothing.content)
        response = list_events.sync_detailed(service.id, client=client)
        assert response.status_code == 404
        assert b"service_suspended" not in response.content
        missing = list_events.sync_detailed("srv-" + "0" * 20, client=client)
        assert (missing.status_code, json.loads(missing.content)) == (
            404,
            json.loads(response.content),
        )


# Retention.


@pytest.mark.django_db
def test_events_are_kept_for_the_workspaces_log_retention(service, make_service):
    longer = Workspace.objects.create(name="Initech", log_retention_days=30)
    kept_longer = make_service(longer, name="other")
    old = events.emit(service, "service_suspended")
    recent = events.emit(service, "service_resumed")
    other = events.emit(kept_longer, "service_suspended")
    now = timezone.now()
    ServiceEvent.objects.filter(pk__in=[old.pk, other.pk]).update(
        created_at=now - timedelta(days=8)
    )

    purge_expired_logs()  # beat's purge-logs task, which purges the logs too
    assert set(ServiceEvent.objects.values_list("pk", flat=True)) == {recent.pk, other.pk}
    assert events.purge_expired(now=now + timedelta(days=30)) == 2


def test_emit_refuses_a_type_render_does_not_have():
    with pytest.raises(ValueError, match="'job_ended'"):
        events.emit("srv-x", "job_ended")

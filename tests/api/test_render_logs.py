"""Render's own Python client (PyPI ``render``) reads logs on a live Oneoff: paging with ``text``
wildcards and regular expressions, a service's jobs' and builds' lines, a build's, ``type`` and
``level`` as Render takes them, the values of a label; every answer parses as Render's model.
A search expression is bounded in cost; Render's filters Oneoff cannot honour are a 400."""

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from render.public_api.api.logs import list_logs, list_logs_values
from render.public_api.models import (
    Error,
    ListLogsResponse200,
    ListLogsValuesLabel,
    LogDirection,
)

from jobs.logs.parse import EPOCH, StoredLine
from jobs.logs.store import insert_lines
from jobs.models import Job, JobStatus, LogStream
from services.models import ApiKey, BuildLogLine
from tests.helpers import render_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    from django.core.cache import cache

    settings.API_RATE_LIMIT_READ = "100000/m"
    cache.clear()


def labels(entry) -> dict[str, str]:
    return {label.name.value: label.value for label in entry.labels}


def read_all(client, owner_id, **filters) -> list:
    """Every line through Render's client, paging forward 3 lines at a time."""
    now = timezone.now()
    params = {"start_time": now - timedelta(hours=1), "end_time": now + timedelta(seconds=5)}
    found = []
    while True:
        page = list_logs.sync(
            client=client,
            owner_id=owner_id,
            direction=LogDirection.FORWARD,
            limit=3,
            **params,
            **filters,
        )
        assert isinstance(page, ListLogsResponse200), page
        found += page.logs
        if not page.has_more:
            return found
        params["start_time"] = page.next_start_time


def messages(entries) -> list[str]:
    return [e.message for e in entries]


@pytest.fixture
def lines_job(make_job):
    return make_job(
        lines=[
            "GET /api/orders 200 responseTimeMS=12",
            "POST /api/users 201 responseTimeMS=1500",
            ("Traceback: KeyError 'order'", 2),
            "GET /health 200 responseTimeMS=3",
            "worker foo then bar",
            ("DELETE /api/orders 500 responseTimeMS=40", 2),
            "a,b,c",
        ]
    )


def test_render_client_pages_a_job_log_with_wildcards_and_regular_expressions(
    render, workspace, lines_job
):
    everything = read_all(render, workspace.id, resource=[lines_job.id])
    assert len(everything) == 7
    assert labels(everything[0]) == {
        "resource": lines_job.id,
        "instance": lines_job.id,
        "level": "info",
        "type": "app",
    }
    # A plain value: lines containing it (a comma is part of it).
    assert messages(read_all(render, workspace.id, resource=[lines_job.id], text=["a,b"])) == [
        "a,b,c"
    ]
    # A wildcard: foo, then anything, then bar.
    assert messages(read_all(render, workspace.id, resource=[lines_job.id], text=["foo*bar"])) == [
        "worker foo then bar"
    ]
    assert messages(
        read_all(render, workspace.id, resource=[lines_job.id], text=["GET*orders*200"])
    ) == ["GET /api/orders 200 responseTimeMS=12"]
    # Regular expressions between slashes, RE2 syntax, matched anywhere in the line.
    assert messages(
        read_all(render, workspace.id, resource=[lines_job.id], text=["/(POST|DELETE) /"])
    ) == ["POST /api/users 201 responseTimeMS=1500", "DELETE /api/orders 500 responseTimeMS=40"]
    slow = read_all(render, workspace.id, resource=[lines_job.id], text=[r"/responseTimeMS=\d{4}/"])
    assert messages(slow) == ["POST /api/users 201 responseTimeMS=1500"]
    # \b is RE2's word boundary (PostgreSQL spells it \y: translated).
    assert messages(read_all(render, workspace.id, resource=[lines_job.id], text=[r"/\bfoo\b/"]))
    # Several values: each must match.
    assert messages(
        read_all(render, workspace.id, resource=[lines_job.id], text=["/api/", "/ 5\\d\\d /"])
    ) == ["DELETE /api/orders 500 responseTimeMS=40"]
    # A * in a plain search is a wildcard, other regex characters are literal.
    assert read_all(render, workspace.id, resource=[lines_job.id], text=["(POST*"]) == []


def test_level_takes_renders_free_strings(render, workspace, lines_job):
    def levels(*values):
        entries = read_all(render, workspace.id, resource=[lines_job.id], level=list(values))
        return sorted({labels(e)["level"] for e in entries}), len(entries)

    assert levels("error") == (["error"], 2)
    assert levels("info") == (["info"], 5)
    assert levels("info", "error") == (["error", "info"], 7)
    assert levels("warning") == ([], 0)  # Render's level, none here: nothing, not a 400
    assert levels("critical", "error") == (["error"], 2)
    assert levels("err*") == (["error"], 2)
    assert levels("/^(info|error)$/") == (["error", "info"], 7)


@pytest.fixture
def service_logs(service, build, make_job, make_build):
    """Two jobs and two builds of ``service``, with lines."""
    first = make_job(lines=["job one says hi"])
    second = make_job(lines=[("job two failed", 2)])
    BuildLogLine.objects.bulk_create(
        BuildLogLine(build=build, seq=i, timestamp=timezone.now(), text=text)
        for i, text in enumerate(["Step 1/2 : FROM busybox", "Step 2/2 : RUN echo hi"], 1)
    )
    other_build = make_build(service)
    BuildLogLine.objects.create(
        build=other_build, seq=1, timestamp=timezone.now(), text="==> build failed: no Dockerfile"
    )
    return first, second, build, other_build


def test_a_service_covers_its_jobs_and_builds_and_type_picks_them(render, workspace, service_logs):
    first, second, build, other_build = service_logs
    service_id = build.service_id
    every = read_all(render, workspace.id, resource=[service_id])
    assert sorted(messages(every)) == sorted(
        [
            "job one says hi",
            "job two failed",
            "Step 1/2 : FROM busybox",
            "Step 2/2 : RUN echo hi",
            "==> build failed: no Dockerfile",
        ]
    )
    step = next(e for e in every if e.message.startswith("Step 1"))
    assert labels(step) == {
        "resource": service_id,
        "instance": build.id,
        "level": "info",
        "type": "build",
    }
    assert len({e.id for e in every}) == 5
    builds_only = read_all(render, workspace.id, resource=[service_id], type_=["build"])
    assert {labels(e)["type"] for e in builds_only} == {"build"}
    assert len(builds_only) == 3
    apps = read_all(render, workspace.id, resource=[service_id], type_=["app"])
    assert sorted(messages(apps)) == ["job one says hi", "job two failed"]
    assert read_all(render, workspace.id, resource=[service_id], type_=["request"]) == []
    # A build by its id; several resources at once; instance narrows to one job or build.
    assert messages(read_all(render, workspace.id, resource=[build.id])) == [
        "Step 1/2 : FROM busybox",
        "Step 2/2 : RUN echo hi",
    ]
    both = read_all(render, workspace.id, resource=[first.id, other_build.id])
    assert sorted(messages(both)) == ["==> build failed: no Dockerfile", "job one says hi"]
    assert messages(
        read_all(render, workspace.id, resource=[service_id], instance=[second.id])
    ) == ["job two failed"]
    # text across both tables
    assert messages(read_all(render, workspace.id, resource=[service_id], text=["/Step 2/"])) == [
        "Step 2/2 : RUN echo hi"
    ]


def test_values_of_a_label(render, workspace, service_logs):
    first, second, build, other_build = service_logs

    def values(label, **filters):
        got = list_logs_values.sync(
            client=render,
            owner_id=workspace.id,
            label=label,
            resource=filters.pop("resource", [build.service_id]),
            **filters,
        )
        assert isinstance(got, list), got
        return got

    assert values(ListLogsValuesLabel.TYPE) == ["app", "build"]
    assert values(ListLogsValuesLabel.TYPE, resource=[first.id]) == ["app"]
    assert values(ListLogsValuesLabel.LEVEL) == ["error", "info"]
    assert values(ListLogsValuesLabel.LEVEL, type_=["build"]) == ["info"]
    assert values(ListLogsValuesLabel.LEVEL, text=["/failed/"], type_=["app"]) == ["error"]
    assert values(ListLogsValuesLabel.INSTANCE) == sorted(
        [first.id, second.id, build.id, other_build.id]
    )
    assert (
        values(ListLogsValuesLabel.INSTANCE, limit=2)
        == sorted([first.id, second.id, build.id, other_build.id])[:2]
    )
    assert values(ListLogsValuesLabel.HOST) == []  # no request logs here
    assert values(ListLogsValuesLabel.STATUSCODE) == []


def test_another_workspaces_resource_is_not_found(
    live_server, outsider, other_workspace, lines_job
):
    with render_client(live_server, outsider, other_workspace) as theirs:
        for call in (
            list_logs.sync,
            lambda **kw: list_logs_values.sync(label=ListLogsValuesLabel.LEVEL, **kw),
        ):
            got = call(client=theirs, owner_id=other_workspace.id, resource=[lines_job.id])
            assert isinstance(got, Error), got
            assert "not found" in (got.message or "")
            got = call(client=theirs, owner_id=other_workspace.id, resource=[lines_job.service_id])
            assert isinstance(got, Error), got
            got = call(client=theirs, owner_id=lines_job.workspace_id, resource=[lines_job.id])
            assert isinstance(got, Error), got


def test_a_viewer_reads_logs_and_values(live_server, viewer, workspace, lines_job):
    with render_client(live_server, viewer, workspace) as client:
        assert len(read_all(client, workspace.id, resource=[lines_job.service_id])) == 7
        got = list_logs_values.sync(
            client=client,
            owner_id=workspace.id,
            label=ListLogsValuesLabel.LEVEL,
            resource=[lines_job.id],
        )
        assert got == ["error", "info"]


def api(user, workspace) -> Client:
    _, secret = ApiKey.issue(user, workspace)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def assert_400(response, field):
    assert response.status_code == 400, response.content
    assert response.json()["message"].startswith(f"{field}"), response.json()


@pytest.mark.parametrize("path", ["/v1/logs", "/v1/logs/values"])
@pytest.mark.parametrize(
    "name", ["host", "statusCode", "method", "path", "task", "taskRun", "sandbox"]
)
def test_renders_filters_oneoff_cannot_honour_are_a_400_naming_them(
    viewer, workspace, lines_job, path, name
):
    query = {"ownerId": workspace.id, "resource": lines_job.id, "label": "level", name: "x"}
    if path == "/v1/logs":
        del query["label"]
    response = api(viewer, workspace).get(path, query)
    assert_400(response, name)
    assert "cannot honour" in response.json()["message"]


@pytest.mark.parametrize(
    "text",
    [
        "/(unclosed/",  # not an expression
        r"/(a)\1/",  # a backreference: RE2 has none (no exponential backtracking)
        "/(?=a)b/",  # lookahead, the same
        "/" + "a" * 300 + "/",  # too long
    ],
)
def test_a_bad_or_costly_expression_is_a_400_naming_text(viewer, workspace, lines_job, text):
    response = api(viewer, workspace).get(
        "/v1/logs", {"ownerId": workspace.id, "resource": lines_job.id, "text": text}
    )
    assert_400(response, "text")


def test_too_many_search_values_is_a_400(viewer, workspace, lines_job):
    response = api(viewer, workspace).get(
        "/v1/logs",
        {"ownerId": workspace.id, "resource": lines_job.id, "text": [f"t{i}" for i in range(11)]},
    )
    assert_400(response, "text")


def big_log(job, count):
    start = timezone.now() - timedelta(minutes=30)
    base = (start - EPOCH) // timedelta(microseconds=1)
    line = "a" * 60
    with transaction.atomic():
        insert_lines(
            job.id, [StoredLine(i, base + i, LogStream.STDOUT, line) for i in range(count)]
        )
    Job.objects.filter(pk=job.pk).update(log_line_count=count)


def test_a_pathological_expression_never_holds_the_database(settings, viewer, workspace, make_job):
    job = make_job(status=JobStatus.SUCCEEDED)
    big_log(job, 100_000)
    client = api(viewer, workspace)
    query = {"ownerId": workspace.id, "resource": job.id, "text": "/(a+)+(a+)+(a+)+b/"}
    # The classic catastrophic-backtracking expression over 100k lines of a's finishes (no line
    # matches) in bounded time ...
    began = time.monotonic()
    response = client.get("/v1/logs", query)
    assert time.monotonic() - began < settings.LOGS_QUERY_TIMEOUT + 3
    if response.status_code == 200:
        assert response.json()["logs"] == []
    else:
        assert_400(response, "text")
    # ... and past the query timeout any search is stopped: a 400 naming text, promptly.
    settings.LOGS_QUERY_TIMEOUT = 0.001  # 1 ms: no scan of 100k lines finishes in it
    began = time.monotonic()
    response = client.get("/v1/logs", {**query, "text": "/(a|aa)*(a|b)*c/"})
    assert time.monotonic() - began < 3
    assert_400(response, "text")
    assert "stopped after" in response.json()["message"]
    # The connection is fine afterwards (the timeout was local to that query).
    settings.LOGS_QUERY_TIMEOUT = 5
    response = client.get("/v1/logs", {"ownerId": workspace.id, "resource": job.id, "limit": 1})
    assert response.status_code == 200
    assert len(response.json()["logs"]) == 1


def test_render_client_lists_resource_log_stream_overrides(
    live_server, render, viewer, workspace, make_service, other_workspace, outsider
):
    from render.public_api.api.logs import list_resource_log_streams
    from render.public_api.models import LogStreamSetting, ResourceLogStreamSetting

    from logstreams.models import ServiceLogStream
    from services.models import Plan, Service

    sending, dropping, plain = (make_service(name=n) for n in ("sending", "dropping", "plain"))
    ServiceLogStream.objects.create(
        service=sending, setting="send", endpoint="logs.example.com:6514", token="t"
    )
    ServiceLogStream.objects.create(service=dropping, setting="drop")
    theirs = Service.objects.create(
        workspace=other_workspace, name="theirs", plan=Plan.objects.first(), image_ref="x:1"
    )
    ServiceLogStream.objects.create(service=theirs, setting="drop")

    def listed(client=render, **filters):
        got = list_resource_log_streams.sync(client=client, **filters)
        assert isinstance(got, list), got
        assert all(isinstance(item, ResourceLogStreamSetting) for item in got)
        return [(item.resource_id, item.setting.value, item.endpoint or None) for item in got]

    both = sorted([(sending.id, "send", "logs.example.com:6514"), (dropping.id, "drop", None)])
    assert listed() == both
    assert listed(owner_id=[workspace.id]) == both
    assert listed(owner_id=[other_workspace.id]) == []  # not the key's: nothing to see
    assert listed(setting=[LogStreamSetting.DROP]) == [(dropping.id, "drop", None)]
    assert listed(resource_id=[sending.id, plain.id, theirs.id]) == [
        (sending.id, "send", "logs.example.com:6514")
    ]
    first = listed(limit=1)
    assert first == both[:1]
    assert listed(limit=1, cursor=first[0][0]) == both[1:]
    with render_client(live_server, viewer, workspace) as client:
        assert listed(client) == both
    with render_client(live_server, outsider, other_workspace) as client:
        assert listed(client) == [(theirs.id, "drop", None)]
    response = api(viewer, workspace).get("/v1/logs/streams/resource", {"logStreamId": "x"})
    assert_400(response, "logStreamId")

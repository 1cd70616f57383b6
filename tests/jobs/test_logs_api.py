"""GET /v1/logs: Render's logs API for jobs, with time-window pagination."""

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.launch import create_job
from jobs.logs.parse import EPOCH, StoredLine
from jobs.logs.read import LogQuery, query_logs
from jobs.logs.store import insert_lines
from jobs.models import Job, LogStream
from services.models import ApiKey
from tests.helpers import wait_finished

LABEL_NAMES = {"resource", "instance", "host", "level", "type", "method", "statusCode", "path"}


@pytest.fixture(autouse=True)
def _clear_rate_limits(settings):
    from django.core.cache import cache

    settings.API_RATE_LIMIT_READ = "100000/m"  # paging tests make thousands of requests
    cache.clear()


def api(user, workspace):
    _, secret = ApiKey.issue(user, workspace)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def add_lines(job, count, start=None, every_us=1000):
    start = start or timezone.now() - timedelta(minutes=10)
    base = (start - EPOCH) // timedelta(microseconds=1)
    lines = [
        StoredLine(
            i,
            base + i * every_us,
            LogStream.STDERR if i % 7 == 0 else LogStream.STDOUT,
            f"line {i}",
        )
        for i in range(count)
    ]
    from django.db import transaction

    with transaction.atomic():
        insert_lines(job.id, lines)
    Job.objects.filter(pk=job.pk).update(log_line_count=count)
    return start, EPOCH + timedelta(microseconds=base + (count - 1) * every_us)


@pytest.fixture
def job(service, make_build):
    make_build(service)
    return create_job(service, "echo")


def get(client, **params):
    response = client.get("/v1/logs", params)
    return response


def test_it_returns_a_page_newest_first(owner, workspace, job):
    add_lines(job, 30)
    r = get(api(owner, workspace), ownerId=workspace.id, resource=job.id)
    assert r.status_code == 200, r.content
    body = r.json()
    assert set(body) == {"hasMore", "nextStartTime", "nextEndTime", "logs"}
    assert body["hasMore"] is True
    assert len(body["logs"]) == 20  # Render's default limit
    assert [e["message"] for e in body["logs"][:2]] == ["line 29", "line 28"]
    entry = body["logs"][0]
    assert set(entry) == {"id", "message", "timestamp", "labels"}
    labels = {label["name"]: label["value"] for label in entry["labels"]}
    assert set(labels) <= LABEL_NAMES
    assert labels["resource"] == job.id
    assert labels["type"] == "app"
    assert labels["level"] == "info"
    levels = {
        e["message"]: {x["name"]: x["value"] for x in e["labels"]}["level"] for e in body["logs"]
    }
    assert levels["line 28"] == "error"  # stderr


def test_the_default_window_is_the_last_hour(owner, workspace, job):
    add_lines(job, 3, start=timezone.now() - timedelta(hours=2))
    body = get(api(owner, workspace), ownerId=workspace.id, resource=job.id).json()
    assert body["logs"] == []
    assert body["hasMore"] is False
    assert body["nextStartTime"]
    assert body["nextEndTime"]


def page_through(client, workspace, job, start, end, direction, limit=100):
    params = {
        "ownerId": workspace.id,
        "resource": job.id,
        "startTime": start.isoformat(),
        "endTime": end.isoformat(),
        "direction": direction,
        "limit": limit,
    }
    messages = []
    requests = 0
    while True:
        r = client.get("/v1/logs", params)
        assert r.status_code == 200, r.content
        body = r.json()
        requests += 1
        messages += [e["message"] for e in body["logs"]]
        if not body["hasMore"]:
            return messages, requests
        key = "startTime" if direction == "forward" else "endTime"
        params[key] = body["nextStartTime" if direction == "forward" else "nextEndTime"]


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_paging_through_the_api_returns_each_line_exactly_once_in_order(
    owner, workspace, job, direction
):
    # Lines 3 µs apart, 100 per page.
    start, last = add_lines(job, 5_000, every_us=3)
    window = (start - timedelta(seconds=1), last + timedelta(seconds=1))
    got, requests = page_through(api(owner, workspace), workspace, job, *window, direction)
    expected = [f"line {i}" for i in range(5_000)]
    assert got == (expected if direction == "forward" else expected[::-1])
    assert requests == 50


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_paging_100000_lines_returns_each_exactly_once_in_order(job, direction):
    # The endpoint's logic without HTTP (a thousand pages each way).
    start, last = add_lines(job, 100_000, every_us=1)
    q = LogQuery(
        jobs=[job],
        start=start - timedelta(seconds=1),
        end=last + timedelta(seconds=1),
        direction=direction,
        limit=100,
    )
    got = []
    while True:
        page = query_logs(q)
        got += [e["message"] for e in page["logs"]]
        if not page["hasMore"]:
            break
        if direction == "forward":
            q.start = datetime.fromisoformat(page["nextStartTime"])
        else:
            q.end = datetime.fromisoformat(page["nextEndTime"])
    expected = [f"line {i}" for i in range(100_000)]
    assert got == (expected if direction == "forward" else expected[::-1])


def test_lines_of_several_jobs_sharing_timestamps_are_never_lost(job, service):
    other = create_job(service, "echo")
    start, last = add_lines(job, 250)
    add_lines(other, 250, start=start)  # the very same timestamps
    q = LogQuery(jobs=[job, other], start=start, end=last, direction="forward", limit=7)
    got = []
    while True:
        page = query_logs(q)
        got += [e["id"] for e in page["logs"]]
        if not page["hasMore"]:
            break
        q.start = datetime.fromisoformat(page["nextStartTime"])
    assert len(got) == len(set(got)) == 500


def test_text_and_level_filter(owner, workspace, job):
    add_lines(job, 50)
    client = api(owner, workspace)
    body = get(client, ownerId=workspace.id, resource=job.id, text="line 4", limit=100).json()
    assert sorted(e["message"] for e in body["logs"]) == sorted(
        ["line 4"] + [f"line {i}" for i in range(40, 50)]
    )
    body = get(client, ownerId=workspace.id, resource=job.id, level="error", limit=100).json()
    assert {e["message"] for e in body["logs"]} == {f"line {i}" for i in range(0, 50, 7)}


def test_an_outsider_gets_404(outsider, other_workspace, workspace, job):
    client = api(outsider, other_workspace)
    assert get(client, ownerId=workspace.id, resource=job.id).status_code == 404
    r = get(client, ownerId=other_workspace.id, resource=job.id)
    assert r.status_code == 404
    assert r.json()["id"] == "not_found"


def test_a_viewer_can_read_logs(viewer, workspace, job):
    add_lines(job, 2)
    r = get(api(viewer, workspace), ownerId=workspace.id, resource=job.id)
    assert r.status_code == 200
    assert len(r.json()["logs"]) == 2


def test_anonymous_gets_401(workspace, job):
    assert (
        Client().get("/v1/logs", {"ownerId": workspace.id, "resource": job.id}).status_code == 401
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"resource": "job-x"}, "ownerId"),
        ({"ownerId": "WS"}, "resource"),
        ({"ownerId": "WS", "resource": "JOB", "direction": "sideways"}, "direction"),
        ({"ownerId": "WS", "resource": "JOB", "limit": "101"}, "limit"),
        ({"ownerId": "WS", "resource": "JOB", "limit": "0"}, "limit"),
        ({"ownerId": "WS", "resource": "JOB", "startTime": "yesterday"}, "startTime"),
        (
            {
                "ownerId": "WS",
                "resource": "JOB",
                "startTime": "2026-01-02T00:00:00Z",
                "endTime": "2026-01-01T00:00:00Z",
            },
            "startTime",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(owner, workspace, job, params, field):
    params = {k: v.replace("WS", workspace.id).replace("JOB", job.id) for k, v in params.items()}
    r = api(owner, workspace).get("/v1/logs", params)
    assert r.status_code == 400, r.content
    assert r.json()["id"] == "bad_request"
    assert r.json()["message"].startswith(field)


@pytest.mark.docker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_200000_lines_of_a_real_job_read_back_forward_and_backward(
    live_worker, job_service, owner, workspace
):
    job = create_job(job_service, "seq 1 200000")
    wait_finished(job, timeout=60)
    assert job.status == "succeeded"
    assert job.log_line_count == 200_000
    texts = list(job.log_lines.order_by("seq").values_list("text", flat=True))
    assert texts == [str(i) for i in range(1, 200_001)]
    # Every line through the API, 100 a page (Render's maximum), both ways: 4,000 requests.
    client = api(owner, workspace)
    window = (job.started_at - timedelta(seconds=1), job.finished_at + timedelta(seconds=1))
    for direction, expected in (("forward", texts), ("backward", texts[::-1])):
        got, requests = page_through(client, workspace, job, *window, direction)
        assert got == expected
        assert requests == 2_000  # every page full: 100 lines

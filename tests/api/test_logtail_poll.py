"""The live tail's polling (``api.logtail.Tail``) in-process: what a subscription sends, once
each, from ``startTime`` through a backlog longer than one poll sends, then new lines as they
are stored; a bad handshake is the API's error."""

from datetime import timedelta

import pytest
from django.utils import timezone

from api import logtail
from api.errors import ApiError
from jobs.models import JobLogLine
from services.errors import Invalid
from services.models import ApiKey


def scope(key: str, query: str) -> dict:
    return {
        "type": "websocket",
        "path": logtail.PATH,
        "headers": [(b"authorization", f"Bearer {key}".encode())],
        "query_string": query.encode(),
        "client": ("127.0.0.1", 5000),
    }


def store(job, first: int, count: int, at):
    JobLogLine.objects.bulk_create(
        JobLogLine(job=job, seq=i, timestamp=at + timedelta(microseconds=i), text=f"line {i}")
        for i in range(first, first + count)
    )


def test_a_tail_sends_the_backlog_since_start_time_then_new_lines_once(
    monkeypatch, viewer, workspace, make_job
):
    monkeypatch.setattr(logtail, "MAX_PAGES", 2)  # 200 lines a poll
    job = make_job()
    began = timezone.now() - timedelta(minutes=5)
    store(job, 1, 450, began)
    _, key = ApiKey.issue(viewer, workspace)
    since = (began - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    tail = logtail.Tail(scope(key, f"ownerId={workspace.id}&resource={job.id}&startTime={since}"))
    sent = []
    for _ in range(3):
        lines, over = tail.poll()
        assert not over
        sent += [entry["message"] for entry in lines]
    assert sent == [f"line {i}" for i in range(1, 451)]
    assert tail.poll()[0] == []
    store(job, 451, 2, timezone.now() - timedelta(seconds=2))  # stored a little late
    assert [e["message"] for e in tail.poll()[0]] == ["line 451", "line 452"]
    assert tail.poll()[0] == []


def test_without_start_time_only_new_lines_come(viewer, workspace, make_job):
    job = make_job(lines=["old"])
    _, key = ApiKey.issue(viewer, workspace)
    tail = logtail.Tail(scope(key, f"ownerId={workspace.id}&resource={job.service_id}"))
    assert tail.poll()[0] == []
    store(job, 2, 1, timezone.now())
    assert [e["message"] for e in tail.poll()[0]] == ["line 2"]


def test_a_bad_handshake_is_the_apis_error(viewer, workspace, outsider, other_workspace, make_job):
    job = make_job()
    _, key = ApiKey.issue(viewer, workspace)
    _, theirs = ApiKey.issue(outsider, other_workspace)
    with pytest.raises(ApiError) as caught:
        logtail.Tail(scope("nope", f"ownerId={workspace.id}&resource={job.id}"))
    assert caught.value.status == 401
    with pytest.raises(ApiError) as caught:
        logtail.Tail(scope(theirs, f"ownerId={other_workspace.id}&resource={job.id}"))
    assert caught.value.status == 404
    with pytest.raises(Invalid) as invalid:
        logtail.Tail(scope(key, f"ownerId={workspace.id}&resource={job.id}&path=/x"))
    assert invalid.value.field == "path"
    with pytest.raises(Invalid) as invalid:
        logtail.Tail(scope(key, f"ownerId={workspace.id}&resource={job.id}&direction=sideways"))
    assert invalid.value.field == "direction"

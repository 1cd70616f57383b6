"""``GET /v1/logs/subscribe``: a real WebSocket client (the ``websockets`` package) on the web
process as production runs it (gunicorn, uvicorn's worker, ``config.asgi``) receives a running
job's lines live, each a JSON message Render's ``Log`` model parses; the handshake is refused with
Render's statuses for a missing key (401), another workspace's job (404) and a filter Oneoff
cannot honour (400)."""

import json
import time

import pytest
from django.utils import timezone
from render.public_api.models import Log
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from services.models import ApiKey
from tests.test_production import call, web_process

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def web(live_worker, tmp_path):
    """The web process as deploy/Procfile runs it (host:port), one process, so its count of open
    tails is the one tested."""
    with web_process(
        live_worker,
        tmp_path,
        WEB_WORKERS="1",
        LOGS_TAIL_MAX_PER_WORKSPACE="3",
        LOGS_TAIL_RECHECK="0.5",
    ) as base:
        yield base.removeprefix("http://")


def subscribe_url(base: str, query: str) -> str:
    return f"ws://{base}/v1/logs/subscribe?{query}"


def test_a_websocket_client_receives_a_running_jobs_lines_live(
    web, job_service, owner, viewer, workspace
):
    _, admin_key = ApiKey.issue(owner, workspace)
    _, viewer_key = ApiKey.issue(viewer, workspace)
    status, job, hdrs = call(
        "POST",
        f"http://{web}/v1/services/{job_service.id}/jobs",
        key=admin_key,
        body={
            "startCommand": "sleep 1; for i in 1 2 3 4 5; do echo tick $i; sleep 0.6; done; "
            "echo oops >&2"
        },
    )
    assert status == 201, job
    assert isinstance(job, dict), (job, hdrs)
    query = f"ownerId={workspace.id}&resource={job['id']}"
    received: list[tuple[Log, str]] = []
    with connect(
        subscribe_url(web, query),
        additional_headers={"Authorization": f"Bearer {viewer_key}"},
        open_timeout=10,
    ) as socket:
        deadline = time.monotonic() + 60
        while len(received) < 6:
            assert time.monotonic() < deadline, [e.message for e, _ in received]
            raw = socket.recv(timeout=max(0.1, deadline - time.monotonic()))
            entry = Log.from_dict(json.loads(raw))  # Render's model, strictly
            # The job's state when the line arrived: the first ones come while it runs.
            _, now, _ = call(
                "GET", f"http://{web}/v1/services/{job_service.id}/jobs/{job['id']}", key=admin_key
            )
            received.append((entry, now["status"]))
    assert [e.message for e, _ in received] == [
        "tick 1",
        "tick 2",
        "tick 3",
        "tick 4",
        "tick 5",
        "oops",
    ]
    assert received[0][1] == "running"  # live, not after the fact
    first = {label.name.value: label.value for label in received[0][0].labels}
    assert first == {"resource": job["id"], "instance": job["id"], "level": "info", "type": "app"}
    last = {label.name.value: label.value for label in received[-1][0].labels}
    assert last["level"] == "error"
    assert len({e.id for e, _ in received}) == 6


def test_the_handshake_is_refused_with_renders_statuses(
    web, job_service, owner, workspace, outsider, other_workspace
):
    _, key = ApiKey.issue(owner, workspace)
    _, their_key = ApiKey.issue(outsider, other_workspace)
    status, job, _ = call(
        "POST",
        f"http://{web}/v1/services/{job_service.id}/jobs",
        key=key,
        body={"startCommand": "echo hi"},
    )
    assert status == 201, job

    def refused(query: str, headers: dict) -> tuple[int, dict]:
        url = subscribe_url(web, query)
        with (
            pytest.raises(InvalidStatus) as caught,
            connect(url, additional_headers=headers, open_timeout=10),
        ):
            pass
        response = caught.value.response
        return response.status_code, json.loads(response.body)

    mine = f"ownerId={workspace.id}&resource={job['id']}"
    status, body = refused(mine, {})
    assert status == 401, body
    status, body = refused(mine, {"Authorization": f"Bearer {their_key}"})
    assert status == 404, body
    theirs = f"ownerId={other_workspace.id}&resource={job['id']}"
    status, body = refused(theirs, {"Authorization": f"Bearer {their_key}"})
    assert status == 404, body
    auth = {"Authorization": f"Bearer {key}"}
    for name in ("host", "statusCode", "method", "path", "task", "taskRun", "sandbox"):
        status, body = refused(f"{mine}&{name}=x", auth)
        assert status == 400, body
        assert body["message"].startswith(name), body
    status, body = refused(f"{mine}&text=/(a)\\1/", auth)
    assert status == 400, body
    assert body["message"].startswith("text"), body
    # A plain GET (no upgrade) is answered by the HTTP side: not a WebSocket.
    status, body, _ = call("GET", f"http://{web}/v1/logs/subscribe?{mine}", key=key)
    assert status == 400, body
    assert "WebSocket" in body["message"]


def test_a_revoked_key_loses_its_tail_and_a_workspace_holds_a_bounded_number(
    web, job_service, owner, workspace
):
    """Three tails at most (LOGS_TAIL_MAX_PER_WORKSPACE here): a fourth is a 429. Revoking the
    key of one closes it (1008) within LOGS_TAIL_RECHECK, which makes room again."""
    keys = [ApiKey.issue(owner, workspace) for _ in range(4)]
    status, job, _ = call(
        "POST",
        f"http://{web}/v1/services/{job_service.id}/jobs",
        key=keys[0][1],
        body={"startCommand": "echo hi"},
    )
    assert status == 201, job
    url = subscribe_url(web, f"ownerId={workspace.id}&resource={job['id']}")

    def open_tail(secret: str):
        return connect(url, additional_headers={"Authorization": f"Bearer {secret}"})

    sockets = [open_tail(secret) for _, secret in keys[:3]]
    try:
        with pytest.raises(InvalidStatus) as caught, open_tail(keys[3][1]):
            pass
        assert caught.value.response.status_code == 429
        assert json.loads(caught.value.response.body)["id"] == "rate_limited"

        ApiKey.objects.filter(pk=keys[0][0].pk).update(revoked_at=timezone.now())
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            sockets[0].recv(timeout=10)  # no new line comes: the close does
        assert closed.value.rcvd.code == 1008, closed.value
        assert time.monotonic() - started < 5
        with open_tail(keys[3][1]) as fourth, pytest.raises(TimeoutError):  # room again
            fourth.recv(timeout=0.5)  # open, and nothing new to send
    finally:
        for socket in sockets:
            socket.close()

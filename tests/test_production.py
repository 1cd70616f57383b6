"""The production mode the README's deployment section describes, exercised: PostgreSQL, Redis,
gunicorn with DEBUG off serving the app and its static files, a worker; a job created through the
API runs and its logs come back through the API."""

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from services.models import ApiKey
from tests.helpers import missing_part

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(method: str, url: str, *, key: str = "", body=None) -> tuple[int, dict | str, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, message = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, message = exc.code, exc.read(), exc.headers
    # Header names as Title-Case whatever the server sends (uvicorn sends them in lower case).
    headers = {name.title(): value for name, value in message.items()}
    if headers.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(raw), headers
    return status, raw.decode(errors="replace"), headers


@contextlib.contextmanager
def web_process(live_worker, tmp_path, **extra_env):
    """gunicorn as deploy/Procfile runs it (config.asgi), on this test's database, broker and
    secrets, with ``extra_env``; yields its base URL once it answers."""
    if connection.vendor != "postgresql":
        missing_part("the production mode is PostgreSQL + Redis: set DATABASE_URL=postgres://…")
    port = free_port()
    env = live_worker.env(DEBUG="false", SITE_URL=f"http://127.0.0.1:{port}", **extra_env)
    env.pop("ONEOFF_SUPERVISOR_INTERVAL", None)
    log = open(tmp_path / "web.log", "w")
    process = subprocess.Popen(
        [GUNICORN, "config.asgi", "--config", "config/gunicorn.py", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "web.log").read_text()
            try:
                if call("GET", f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail(
                "gunicorn did not answer within 60 s:\n" + (tmp_path / "web.log").read_text()
            )
        yield base
    finally:
        process.terminate()
        process.wait(15)
        log.close()


@pytest.fixture
def web(live_worker, tmp_path):
    with web_process(live_worker, tmp_path) as base:
        yield base


def test_a_job_created_through_the_api_runs_and_its_logs_come_back(
    web, job_service, owner, workspace
):
    _, key = ApiKey.issue(owner, workspace)
    status, job, _ = call(
        "POST",
        f"{web}/v1/services/{job_service.id}/jobs",
        key=key,
        body={"startCommand": "echo hello from production; echo careful >&2"},
    )
    assert status == 201, job
    deadline = time.monotonic() + 60
    while job["status"] not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
        job = call("GET", f"{web}/v1/services/{job_service.id}/jobs/{job['id']}", key=key)[1]
    assert job["status"] == "succeeded", job

    status, page, _ = call(
        "GET",
        f"{web}/v1/logs?ownerId={workspace.id}&resource={job['id']}&direction=forward",
        key=key,
    )
    assert status == 200, page
    # stdout and stderr are stamped apart by Docker: their relative order is not guaranteed.
    messages = sorted(entry["message"] for entry in page["logs"])
    assert messages == ["careful", "hello from production"]


def test_debug_is_off_and_static_files_are_served(web):
    status, body, headers = call("GET", f"{web}/static/js/app.js")
    assert status == 200
    assert "htmx" in body
    assert "uvicorn" in headers.get("Server", "")  # gunicorn's uvicorn worker (config/asgi.py)

    status, body, _ = call("GET", f"{web}/no-such-page/")
    assert status == 404
    assert "Not found" in body
    assert "URLconf" not in body  # Django's debug 404 lists the URL patterns

    status, body, _ = call("GET", f"{web}/v1/no-such-endpoint", key="")
    assert status in (401, 404)
    assert set(body) == {"id", "message"}

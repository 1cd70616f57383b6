"""The client's own logic, without Oneoff: the request it sends (a small recording HTTP server
stands in for the API), its retries, exit codes, log cursor, config file and imports."""

import ast
import json
import os
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from oneoff_cli import config
from oneoff_cli.client import base_url
from oneoff_cli.exitcodes import CliError
from oneoff_cli.main import job_exit_code, start_command
from oneoff_cli.watch import LogCursor
from tests.cli.conftest import ONEOFF, cli_env

SERVICE = "srv-" + "a" * 20
JOB = {
    "id": "job-" + "b" * 20,
    "serviceId": SERVICE,
    "startCommand": "x",
    "planId": "plan-srv-006",
    "createdAt": "2026-03-20T12:00:00.000000+00:00",
    "status": "pending",
}
KEY = "oneoff_secret-key-for-the-fake"


class FakeApi:
    """Records each request; answers from ``answers`` (a list per "METHOD path", popped in
    order, the last one repeated)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: dict[str, list[tuple[int, dict, object]]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(body) if body else None,
                    }
                )
                queue = fake.answers.get(f"{self.command} {self.path.split('?')[0]}")
                status, headers, data = (
                    (queue.pop(0) if len(queue) > 1 else queue[0])
                    if queue
                    else (404, {}, {"id": "not_found", "message": "not found"})
                )
                raw = json.dumps(data).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    api = FakeApi()
    yield api
    api.close()


@pytest.fixture
def run_cli(fake, tmp_path):
    def run(*args):
        return subprocess.run(
            [ONEOFF, *args],
            cwd=tmp_path,
            env=cli_env(tmp_path, fake.url, KEY),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )

    return run


def test_overrides_go_in_the_create_body_only_when_given(fake, run_cli):
    fake.answers[f"POST /v1/services/{SERVICE}/jobs"] = [(201, {}, JOB)]
    plain = run_cli("jobs", "run", SERVICE, "--", "echo hi")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == JOB["id"].encode() + b"\n"
    overrides = run_cli(
        "jobs", "run", SERVICE, "--plan", "plan-srv-010", "--env", "A=1", "--env", "B=x=y",
        "--env", "EMPTY=", "--timeout", "30", "--", "python", "-c", "print('a b')",
    )  # fmt: skip
    assert overrides.returncode == 0, overrides.stderr
    first, second = fake.requests
    assert first["body"] == {"startCommand": "echo hi"}
    assert second["body"] == {
        "startCommand": "python -c 'print('\"'\"'a b'\"'\"')'",
        "planId": "plan-srv-010",
        "envVars": [
            {"key": "A", "value": "1"},
            {"key": "B", "value": "x=y"},
            {"key": "EMPTY", "value": ""},
        ],
        "timeoutSeconds": 30,
    }
    for request in (first, second):
        assert request["headers"]["Authorization"] == f"Bearer {KEY}"
        uuid.UUID(request["headers"]["Idempotency-Key"])  # a fresh one per run
    assert first["headers"]["Idempotency-Key"] != second["headers"]["Idempotency-Key"]


def test_bad_overrides_are_usage_errors(fake, run_cli):
    for args in (("--env", "1A=x"), ("--env", "A"), ("--timeout", "0"), ("--timeout", "x")):
        result = run_cli("jobs", "run", SERVICE, *args, "--", "true")
        assert result.returncode == 64, (args, result.stderr)
    assert fake.requests == []


def test_a_create_meeting_a_503_is_sent_again_with_the_same_idempotency_key(fake, run_cli):
    fake.answers[f"POST /v1/services/{SERVICE}/jobs"] = [
        (503, {"Retry-After": "0"}, {"id": "unavailable", "message": "database down"}),
        (201, {}, JOB),
    ]
    result = run_cli("jobs", "run", SERVICE, "--idempotency-key", "k-1", "--", "true")
    assert result.returncode == 0, result.stderr
    keys = [r["headers"]["Idempotency-Key"] for r in fake.requests]
    assert keys == ["k-1", "k-1"]


def test_a_refused_create_is_one_line_with_the_apis_message(fake, run_cli):
    fake.answers[f"POST /v1/services/{SERVICE}/jobs"] = [
        (400, {}, {"id": "bad_request", "message": "planId: no such plan"})
    ]
    result = run_cli("-v", "jobs", "run", SERVICE, "--", "true")
    assert result.returncode == 65
    assert result.stderr.splitlines()[-1] == b"oneoff: error: planId: no such plan (HTTP 400)"
    assert KEY.encode() not in result.stderr + result.stdout


def test_wait_polls_until_the_end_and_exits_with_its_code(fake, run_cli):
    fake.answers[f"POST /v1/services/{SERVICE}/jobs"] = [(201, {}, JOB)]
    done = {**JOB, "status": "failed", "exitCode": 3, "reason": {"nonZeroExit": 3}}
    fake.answers[f"GET /v1/services/{SERVICE}/jobs/{JOB['id']}"] = [
        (200, {}, {**JOB, "status": "running"}),
        (503, {"Retry-After": "0"}, {"id": "unavailable", "message": "restarting"}),
        (200, {}, done),
    ]
    result = run_cli("jobs", "run", SERVICE, "--wait", "--", "exit 3")
    assert result.returncode == 3, result.stderr
    assert b"retrying" in result.stderr


@pytest.mark.parametrize(
    ("job", "code"),
    [
        ({"status": "succeeded", "exitCode": 0}, 0),
        ({"status": "failed", "exitCode": 3, "reason": {"nonZeroExit": 3}}, 3),
        ({"status": "failed", "exitCode": 137, "reason": {"oomKilled": {}}}, 137),
        ({"status": "failed", "reason": {"oomKilled": {"memoryLimit": "8Mi"}}}, 137),
        ({"status": "failed", "exitCode": 143, "reason": {"timedOutSeconds": 2}}, 124),
        ({"status": "failed", "reason": {"startError": "no image"}}, 1),
        ({"status": "failed", "reason": {"evicted": True}}, 1),
        ({"status": "canceled", "exitCode": 143, "reason": {"canceledBy": "api"}}, 1),
    ],
)
def test_the_exit_code_of_a_finished_job(job, code):
    assert job_exit_code(job) == code


def test_the_start_command():
    assert start_command(("make db && migrate",)) == "make db && migrate"
    assert start_command(("echo", "a b", "$HOME")) == "echo 'a b' '$HOME'"


def test_the_api_url_may_name_the_site_or_its_api():
    assert base_url("http://localhost:8000") == ("http", "localhost", 8000, "/v1")
    assert base_url("https://api.render.com/v1/") == ("https", "api.render.com", 443, "/v1")
    assert base_url("https://example.com/oneoff") == ("https", "example.com", 443, "/oneoff/v1")
    with pytest.raises(CliError):
        base_url("localhost:8000")


def test_the_log_cursor_never_prints_a_line_twice():
    from datetime import UTC, datetime

    cursor = LogCursor(datetime(2026, 3, 20, tzinfo=UTC), "job-x")
    page = [{"id": f"job-x-{n}"} for n in (1, 2, 3)]
    assert cursor.fresh(page) == page
    cursor.moved(page, "2026-03-20T12:00:00.000004+00:00")
    assert cursor.start == "2026-03-20T12:00:00.000004+00:00"
    again = [{"id": "job-x-3"}, {"id": "job-x-4"}]
    assert cursor.fresh(again) == [{"id": "job-x-4"}]
    # Ids of another shape (Render's) are compared whole, never as numbers.
    other = LogCursor(datetime(2026, 3, 20, tzinfo=UTC), "job-y")
    other.moved([{"id": "abc-9"}], "2026-03-20T12:00:00.000001+00:00")
    assert other.fresh([{"id": "abc-9"}, {"id": "abc-1"}]) == [{"id": "abc-1"}]


def test_a_config_file_others_can_read_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = config.write_file({"api_url": 'http://x"y', "api_key": "sekrit-123"})
    assert path == tmp_path / "oneoff" / "config.toml"
    assert path.stat().st_mode & 0o777 == 0o600
    assert config.read_file() == {"api_url": 'http://x"y', "api_key": "sekrit-123"}
    for mode in (0o640, 0o604):
        path.chmod(mode)
        with pytest.raises(CliError) as refused:
            config.read_file()
        assert refused.value.code == 78
        assert "sekrit" not in refused.value.message
    path.chmod(0o600)
    path.write_text("api_url = \n")
    with pytest.raises(CliError, match="not valid TOML"):
        config.read_file()


def test_flags_win_over_the_environment_over_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("ONEOFF_API_URL", raising=False)
    monkeypatch.setenv("ONEOFF_API_KEY", "env-key")
    config.write_file({"api_url": "http://file", "api_key": "file-key"})
    settings = config.resolve(None, None)
    assert (settings.api_url, settings.api_key) == ("http://file", "env-key")
    assert config.resolve("http://flag", "flag-key").api_key == "flag-key"


def test_the_client_imports_nothing_of_the_server():
    """It runs from any folder, against any Oneoff: Click and the standard library only."""
    root = Path(__file__).resolve().parents[2] / "oneoff_cli"
    server = {"django", "config", "api", "dashboard", "logstreams", "jobs", "services", "ninja"}
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in server, (path.name, name)


def test_it_runs_from_another_folder_without_the_checkout(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    result = subprocess.run(
        [ONEOFF, "--version"], cwd=tmp_path, env=env, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"oneoff, version 0.1.0\n"

"""The command-line client against a live Oneoff: gunicorn (as deployed) on this test run's
database, the real Celery workers and Docker Engine, and ``.venv/bin/oneoff`` run as a
subprocess from a folder outside the checkout.

``oneoff_server`` can be stopped and started again on the same port (``stop()``, ``start()``),
to restart the API in the middle of a job."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from services.models import ApiKey, Plan
from tests.helpers import missing_part

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
ONEOFF = str(Path(sys.executable).with_name("oneoff"))
# High enough for a tail of a 10,000-line log and the polls around it.
RATES = {
    f"API_RATE_LIMIT{scope}_{kind}": "100000/m"
    for scope in ("", "_USER", "_WORKSPACE")
    for kind in ("READ", "WRITE", "JOB_CREATE")
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OneoffServer:
    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "SITE_URL": self.url, **RATES}
        self.env.pop("ONEOFF_SUPERVISOR_INTERVAL", None)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        bind = f"127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [GUNICORN, "config.asgi", "--config", "config/gunicorn.py", "--bind", bind],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        pytest.fail("gunicorn did not answer within 60 s:\n" + self.log_path.read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)


@pytest.fixture(scope="module")
def oneoff_server(live_worker, tmp_path_factory):
    if connection.vendor != "postgresql":
        missing_part("the CLI tests run gunicorn on PostgreSQL: set DATABASE_URL=postgres://…")
    server = OneoffServer(
        live_worker.env(DEBUG="false"), tmp_path_factory.mktemp("web") / "web.log"
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api_key(owner, workspace):
    return ApiKey.issue(owner, workspace)[1]


@pytest.fixture
def home(tmp_path):
    """A folder outside the checkout: the client's working directory and config home."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def oneoff(oneoff_server, api_key, home):
    """Run ``oneoff ARGS…``; a CompletedProcess with bytes stdout and stderr."""

    def run(*args, key=None, url=None, timeout=120, **kwargs):
        env = cli_env(home, url or oneoff_server.url, api_key if key is None else key)
        return subprocess.run(
            [ONEOFF, *args],
            cwd=home,
            env=env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    return run


def cli_env(home: Path, url: str | None, key: str | None) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ONEOFF_API_") and k not in ("XDG_CONFIG_HOME", "NO_COLOR")
    }
    env.update(XDG_CONFIG_HOME=str(home / ".config"), HOME=str(home))
    if url:
        env["ONEOFF_API_URL"] = url
    if key:
        env["ONEOFF_API_KEY"] = key
    return env


@pytest.fixture
def tiny_plan(db):
    plan, _ = Plan.objects.update_or_create(
        id="plan-srv-test-tiny",
        defaults={"name": "Tiny (test)", "kind": "srv", "memory_mb": 8, "cpu": "0.25"}
        | {"price_monthly": "1.00"},
    )
    return plan

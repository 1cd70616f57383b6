"""Boot the embedded defaults (SQLite + kombu's filesystem broker): web, worker and beat talk."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_web_worker_and_beat_talk_on_embedded_defaults(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(ONEOFF_VAR_DIR=str(tmp_path), RUNNER_HOST="embedded-smoke", PYTHONUNBUFFERED="1")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("web", "worker", "beat")}
    commands = {
        "web": [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        "worker": [str(BIN / "celery"), "-A", "config", "worker", "--pool=solo", "-l", "INFO"],
        "beat": [str(BIN / "celery"), "-A", "config", "beat", "-l", "INFO"],
    }
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logs[name], stderr=subprocess.STDOUT)
        for name, cmd in commands.items()
    ]
    try:
        deadline = time.monotonic() + 60
        workers = []
        while time.monotonic() < deadline and not workers:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    body = json.loads(r.read())
            except OSError:
                continue
            assert body["database"] == "ok"
            workers = [w["host"] for w in body["workers"]]
        assert workers == ["embedded-smoke"], {
            name: (tmp_path / f"{name}.log").read_text()[-2000:] for name in logs
        }
        assert (tmp_path / "oneoff.sqlite3").exists()
        assert (tmp_path / "broker").is_dir()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)

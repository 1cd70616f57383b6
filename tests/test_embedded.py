"""`make run` (scripts/run.sh) on the embedded defaults (SQLite + kombu's filesystem broker): the
production app server with DEBUG off, two workers (jobs, builds) and beat that talk, a quiet
console, a crashed process started again, and one Ctrl-C that stops everything within 3 s."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import REQUIRE_PARTS

ROOT = Path(__file__).resolve().parent.parent
JOBS_READY = f"jobs@{socket.gethostname()} ready."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return (
                response.status,
                response.read(),
                {k.title(): v for k, v in response.headers.items()},
            )
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), {k.title(): v for k, v in exc.headers.items()}


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses with a socket listening on ``port``, from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


class Run:
    """scripts/run.sh in its own process group, its console in a file."""

    def __init__(self, var_dir: Path, port: int):
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE")
        }
        env.update(
            ONEOFF_VAR_DIR=str(var_dir),
            PORT=str(port),
            RUNNER_HOST="embedded-smoke",
            PYTHONUNBUFFERED="1",
            ONEOFF_NO_SYSTEM_INSTALL="1",
            WORKER_CONCURRENCY="2",
        )
        env.pop("DEBUG", None)
        self.console = var_dir / f"console-{time.monotonic_ns()}.log"
        self.out = open(self.console, "w")
        self.proc = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.console.read_text()

    def interrupt(self) -> float:
        """Ctrl-C as a terminal sends it (SIGINT to the whole process group); seconds until the
        command returns. Every process of the group is gone a few seconds later."""
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=30)
        returned = time.monotonic() - started
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return returned
            time.sleep(0.1)
        raise AssertionError(f"processes of run.sh still alive 10 s after Ctrl-C:\n{self.text()}")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.out.close()


def processes_of(run: Run, *words: str) -> list[int]:
    """Pids of the processes in ``run``'s session whose command line holds each of ``words``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != run.proc.pid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ProcessLookupError):
            continue
        if all(word.encode() in argv for word in words):
            found.append(int(entry.name))
    return found


def engine_answers() -> bool:
    """A Docker Engine for the example's build (the embedded test runs without one too)."""
    try:
        import docker

        docker.from_env(timeout=10).ping()
    except Exception:
        if REQUIRE_PARTS:
            raise
        return False
    return True


def wait_for_worker(port: int, run: Run, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        assert run.proc.poll() is None, run.text()[-3000:]
        try:
            status, body, _ = get(f"http://127.0.0.1:{port}/healthz")
        except OSError:
            continue
        data = json.loads(body)
        if status == 200 and data["workers"]:
            return data
    raise AssertionError(f"no worker heart-beat within {timeout} s:\n{run.text()[-3000:]}")


@pytest.mark.slow
def test_make_run_serves_with_the_production_server_and_stops_on_one_ctrl_c(tmp_path):
    port = free_port()
    run = Run(tmp_path, port)
    try:
        health = wait_for_worker(port, run)
        assert health["database"] == "ok"
        assert [w["host"] for w in health["workers"]] == ["embedded-smoke"]
        assert (tmp_path / "oneoff.sqlite3").exists()

        # gunicorn (its uvicorn worker, config/asgi.py), not runserver, with DEBUG off: an unknown
        # page is the styled 404, and static files come from WhiteNoise.
        status, body, headers = get(f"http://127.0.0.1:{port}/no-such-page/")
        assert status == 404
        assert b"Not found" in body
        assert b"Traceback" not in body
        assert "uvicorn" in headers.get("Server", "")
        status, body, _ = get(f"http://127.0.0.1:{port}/static/css/app.css")
        assert status == 200
        assert b".topbar" in body
        status, _, _ = get(f"http://127.0.0.1:{port}/login/")
        assert status == 200

        # Bound to the loopback address only (HOST or BIND exposes it).
        assert listening_addresses(port) == {"127.0.0.1"}

        # The example service's build, which bootstrap_demo queued, runs on the builds worker:
        # both Celery queues work through the filesystem broker.
        if engine_answers():
            deadline = time.monotonic() + 90
            while " of example succeeded" not in run.text() and time.monotonic() < deadline:
                assert run.proc.poll() is None, run.text()[-3000:]
                time.sleep(0.5)
            assert " of example succeeded" in run.text(), run.text()[-3000:]
            assert "builds@" in run.text()
            assert "jobs@" in run.text()

        # A crashed process is started again, and the console says so: kill -9 the jobs worker.
        [worker] = processes_of(run, "worker", "jobs")
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "oneoff: jobs worker restarted" not in run.text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "oneoff: jobs worker exited (status 137); restarting in 1 s" in run.text()
        assert "oneoff: jobs worker restarted" in run.text(), run.text()[-3000:]
        [again] = processes_of(run, "worker", "jobs")
        assert again != worker
        deadline = time.monotonic() + 60
        while run.text().count(JOBS_READY) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert run.text().count(JOBS_READY) == 2, run.text()[-3000:]  # the new one is ready

        time.sleep(6)  # a heartbeat and a sweep or two go by
        assert processes_of(run, "worker", "jobs") == [again]
        seconds = run.interrupt()
        assert seconds < 3, f"Ctrl-C took {seconds:.1f} s:\n{run.text()[-3000:]}"
        console = run.text()
        assert console.count("This password is shown only now.") == 1, console
        assert "jobs.tasks.heartbeat[" not in console, console  # quiet: no line per heart-beat
        assert "Sending due task" not in console, console
    finally:
        run.kill()

    # A second start reuses the generated secrets and never prints the password again.
    secrets_file = tmp_path / "secrets.json"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert tmp_path.stat().st_mode & 0o777 == 0o700
    before = secrets_file.read_text()
    again = Run(tmp_path, port)
    try:
        wait_for_worker(port, again)
        console = again.text()
        assert "with password" not in console, console
        assert "manage.py changepassword admin@example.com" in console, console
        assert again.interrupt() < 3
    finally:
        again.kill()
    assert secrets_file.read_text() == before

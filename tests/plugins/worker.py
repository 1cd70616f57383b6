"""Fixtures for the runner: real Celery worker subprocesses, and jobs on the busybox image.

``live_worker`` starts ``celery -A config worker -Q jobs`` and ``… -Q builds`` (the two worker
processes of a runner host) with this test run's database, broker and a container label of its
own (``ONEOFF_INSTANCE``), once per test module, and stops them afterwards. Its
``restart(**env)``, ``kill()`` (SIGKILL) and ``start(**env)`` let a test crash them or run them
with other settings. Tests using it need committed data: mark them
``@pytest.mark.django_db(transaction=True, serialized_rollback=True)`` (the serialized rollback
brings back the seeded plans that a transactional test's flush removes).
"""

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from config import secrets
from services.models import Build, BuildStatus
from tests.helpers import TEST_EGRESS_ALLOW, wait_for

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


@pytest.fixture(scope="session")
def runner_instance():
    """A container label of this test session's own, so nothing else's containers are touched."""
    value = f"test-{uuid.uuid4().hex[:10]}"
    old = settings.ONEOFF_INSTANCE
    settings.ONEOFF_INSTANCE = value
    yield value
    settings.ONEOFF_INSTANCE = old
    try:
        import docker

        client = docker.from_env()
        for container in client.containers.list(
            all=True, filters={"label": f"oneoff.instance={value}"}
        ):
            container.remove(force=True)
    except Exception:
        pass


class LiveWorker:
    """Real Celery workers on the test database and broker, as a runner host runs them: one
    ``celery -A config worker -Q jobs`` (job starts and the supervisor; ``process``) and one
    ``-Q builds`` (``builds_process``). ``start``, ``stop``, ``kill`` and ``restart`` act on both.
    """

    def __init__(self, instance: str, var_dir: Path, base_env: dict):
        self.instance = instance
        self.var_dir = var_dir
        self.base_env = base_env
        self.process: subprocess.Popen | None = None
        self.builds_process: subprocess.Popen | None = None
        self.log_path = var_dir / "worker.log"
        self.builds_log_path = var_dir / "builds-worker.log"
        self.starts = 0

    def env(self, **extra) -> dict:
        db = connection.settings_dict
        user, host, port = db["USER"] or "postgres", db["HOST"] or "127.0.0.1", db["PORT"] or 5432
        url = f"postgres://{user}@{host}:{port}/{db['NAME']}"
        if connection.vendor != "postgresql":
            url = f"sqlite:///{db['NAME']}"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "ONEOFF_INSTANCE": self.instance,
            "ONEOFF_VAR_DIR": str(self.var_dir),
            "ONEOFF_SUPERVISOR_INTERVAL": "0.2",
            "JOB_STOP_GRACE": "2",
            "CONN_MAX_AGE": "0",
            "EGRESS_ALLOW": ",".join(TEST_EGRESS_ALLOW),
            # This test process's secrets: the worker decrypts what the test encrypted.
            **secrets.environment(settings),
            **self.base_env,
        }
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def _spawn(self, queue: str, log_path: Path, env: dict) -> tuple[subprocess.Popen, int]:
        log = open(log_path, "ab")
        log.write(f"\n=== start {self.starts}\n".encode())
        log.flush()
        offset = log.tell()
        process = subprocess.Popen(
            [
                CELERY,
                "-A",
                "config",
                "worker",
                "-Q",
                queue,
                "--loglevel=INFO",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                f"--hostname={queue}-{self.instance}-{self.starts}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return process, offset

    def start(self, **extra) -> "LiveWorker":
        assert self.process is None or self.process.poll() is not None, "already running"
        assert self.builds_process is None or self.builds_process.poll() is not None
        self.starts += 1
        env = self.env(**extra)
        self.process, offset = self._spawn("jobs", self.log_path, env)
        self.builds_process, builds_offset = self._spawn("builds", self.builds_log_path, env)

        def logged(path: Path, at: int) -> bytes:
            with open(path, "rb") as f:
                f.seek(at)
                return f.read()

        def ready():
            for process in (self.process, self.builds_process):
                if process.poll() is not None:
                    self.stop()  # the other one too: never leave a worker behind the test run
                    pytest.fail(f"a worker exited at start:\n{self.tail()}")
            jobs = logged(self.log_path, offset)
            builds = logged(self.builds_log_path, builds_offset)
            return b" ready." in jobs and b"supervisor running" in jobs and b" ready." in builds

        wait_for(ready, 40, 0.1, "the Celery workers to be ready")
        return self

    def stop(self) -> None:
        running = [p for p in (self.process, self.builds_process) if p and p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait(10)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as when a machine loses power."""
        for process in (self.process, self.builds_process):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(10)

    def restart(self, **extra) -> "LiveWorker":
        self.stop()
        return self.start(**extra)

    def tail(self, lines: int = 60) -> str:
        """The end of the jobs worker's console."""
        return self._tail(self.log_path, lines)

    def builds_tail(self, lines: int = 60) -> str:
        return self._tail(self.builds_log_path, lines)

    @staticmethod
    def _tail(path: Path, lines: int) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _purge_broker():
    from config.celery import app

    with contextlib.suppress(Exception):  # an empty or fresh broker is fine
        app.control.purge()


@pytest.fixture(scope="module")
def live_worker(request, django_db_setup, django_db_blocker, runner_instance, tmp_path_factory):
    """The Celery workers (jobs and builds) for the module's tests, with its ``WORKER_ENV``; the
    builds worker clones from ``var_dir / "repos"`` (its BUILD_LOCAL_REPOS_DIR)."""
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "amqp://")):
        pytest.fail("live_worker needs CELERY_BROKER_URL to name a Redis (or RabbitMQ) broker")
    base_env = getattr(request.module, "WORKER_ENV", {})
    with django_db_blocker.unblock():
        _purge_broker()
        worker = LiveWorker(runner_instance, tmp_path_factory.mktemp("worker"), base_env)
        worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def busybox_build(busybox_image, runner_instance):
    def make(service, **fields) -> Build:
        now = timezone.now()
        fields.setdefault("image_id", busybox_image)
        return Build.objects.create(
            service=service,
            status=BuildStatus.SUCCEEDED,
            started_at=now,
            finished_at=now,
            **fields,
        )

    return make


@pytest.fixture
def job_service(make_service, busybox_build):
    service = make_service(name="runner")
    busybox_build(service)
    return service

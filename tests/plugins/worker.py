"""Fixtures for the runner: a real Celery worker subprocess, and jobs on the busybox image.

``live_worker`` starts ``celery -A config worker`` with this test run's database, broker and a
container label of its own (``ONEOFF_INSTANCE``), once per test module, and stops it afterwards.
Its ``restart(**env)``, ``kill()`` (SIGKILL) and ``start(**env)`` let a test crash it or run it
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
    """A real ``celery -A config worker`` subprocess on the test database and broker."""

    def __init__(self, instance: str, var_dir: Path, base_env: dict):
        self.instance = instance
        self.var_dir = var_dir
        self.base_env = base_env
        self.process: subprocess.Popen | None = None
        self.log_path = var_dir / "worker.log"
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

    def start(self, **extra) -> "LiveWorker":
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n=== start {self.starts} {extra}\n".encode())
        log.flush()
        offset = log.tell()
        self.process = subprocess.Popen(
            [
                CELERY,
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                "--concurrency=4",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                f"--hostname=oneoff-test-{self.instance}-{self.starts}@%h",
            ],
            cwd=ROOT,
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def ready():
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited at start:\n{self.tail()}")
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read()
            return b" ready." in text and b"supervisor running" in text

        wait_for(ready, 40, 0.1, "the Celery worker to be ready")
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as when a machine loses power."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def restart(self, **extra) -> "LiveWorker":
        self.stop()
        return self.start(**extra)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _purge_broker():
    from config.celery import app

    with contextlib.suppress(Exception):  # an empty or fresh broker is fine
        app.control.purge()


@pytest.fixture(scope="module")
def live_worker(request, django_db_setup, django_db_blocker, runner_instance, tmp_path_factory):
    """A Celery worker subprocess for the module's tests (with the module's ``WORKER_ENV``)."""
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

"""run_build through a real Celery worker (a subprocess on the test database and broker)."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, transaction

from config.celery import app
from services.builds import queue as builds
from services.models import Build, BuildStatus
from tests.helpers import BASE, missing_part, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _test_database_url() -> str:
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    user = f"{quote(db['USER'])}{password}@" if db.get("USER") else ""
    return f"postgres://{user}{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(transactional_db, tmp_path):
    if connection.vendor != "postgresql" or settings.CELERY_BROKER_URL.startswith("filesystem"):
        missing_part("a worker in another process needs DATABASE_URL=postgres://… and a broker")
    app.control.purge()  # messages other tests left on this broker
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "ONEOFF_INSTANCE": settings.ONEOFF_INSTANCE,
    }
    log = open(tmp_path / "worker.log", "w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=INFO",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()
    if process.returncode not in (0, -15):
        print((tmp_path / "worker.log").read_text())


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_requested_build_runs_on_a_celery_worker(service, busybox_image, worker, tmp_path):
    service.image_ref = BASE
    service.save()
    with transaction.atomic():
        build = builds.request_build(service)  # sends run_build once this commits

    def finished():
        build.refresh_from_db()
        return build.is_finished

    try:
        wait_for(finished, timeout=30, interval=0.2)
    except AssertionError:
        print((tmp_path / "worker.log").read_text())
        raise
    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert build.image_id == busybox_image
    assert Build.objects.get(pk=build.pk).log_lines.exists()

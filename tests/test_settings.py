import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_check(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bad_database_url_names_the_variable():
    result = run_check(DATABASE_URL="mysqlx://nope")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_defaults_are_sqlite_in_wal_mode_and_a_serverless_broker(tmp_path):
    code = (
        "from django.conf import settings; from django.db import connection;"
        "c = connection.cursor(); c.execute('PRAGMA journal_mode'); print(c.fetchone()[0]);"
        "print(settings.DATABASES['default']['ENGINE']); print(settings.CELERY_BROKER_URL)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["ONEOFF_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == [
        "wal",
        "django.db.backends.sqlite3",
        "filesystem://localhost/",
    ]


def test_a_bad_log_source_names_the_variable():
    result = run_check(JOB_LOG_SOURCE="file")
    assert result.returncode != 0
    assert "JOB_LOG_SOURCE must be auto or api" in result.stderr


def test_swarm_with_a_registry_login_is_refused_at_start():
    """Swarm's nodes would pull without the login: refused with the reason, not jobs failing."""
    result = run_check(
        JOB_BACKEND="swarm", JOB_REGISTRY="registry.example:5000", JOB_REGISTRY_USERNAME="ci"
    )
    assert result.returncode != 0
    assert "JOB_BACKEND=swarm does not support a JOB_REGISTRY that needs a login" in result.stderr
    assert run_check(JOB_BACKEND="swarm", JOB_REGISTRY="registry.example:5000").returncode == 0

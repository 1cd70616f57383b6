"""The embedded default (`make run`: SQLite and kombu's filesystem broker, no server) measured
with the production benchmarks' own figures, so that a user knows what the two-command setup
gives (issue 20, point 4).

1. Runner, on SQLite and the filesystem broker (``bench_runner``'s parts, same baselines):
   create -> running p50 beside a bare ``docker run -d``; 100 jobs created at once beside 100
   bare ``docker run --rm`` with the worker's concurrency; one job printing 1,000,000 lines,
   stored lines/s beside a bare ``docker logs`` read to /dev/null.
2. Requests through Django's test client, on SQLite with the database cache (the embedded
   default) and, in the same run, on PostgreSQL (the baseline), each with 1,000,000 jobs and a
   running job with a 1,000,000-line log: the API's first page of jobs, the Jobs page and the
   job page, p50/p95.

Each part runs in a process of its own (Django reads its settings once). ``--quick``: tiny sizes.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import ROOT, bench_service, insert_jobs, percentile, with_own_database

RESULT = "RESULT "


def embedded_env(folder: Path) -> None:
    """The embedded defaults in ``folder``, as ``make run`` has them: env read at import."""
    for name in ("CACHE_URL", "CELERY_BROKER_URL", "BROKER_DIR"):
        os.environ.pop(name, None)
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'oneoff.sqlite3'}"
    os.environ["ONEOFF_VAR_DIR"] = str(folder)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["ONEOFF_INSTANCE"] = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ["LOG_LEVEL"] = "WARNING"


def report(result: dict) -> None:
    print(RESULT + json.dumps(result), flush=True)


# --- 1. the runner -----------------------------------------------------------------------------


def runner_part(quick: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="oneoff-bench-embedded-"))
    embedded_env(folder)
    import django

    django.setup()
    import bench_runner as br
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    image = br.ensure_image()
    _, service, _, _ = bench_service(image)
    n_latency, n_throughput, lines = (5, 10, 20_000) if quick else (30, 100, 1_000_000)
    env = {"ONEOFF_VAR_DIR": str(folder), "ONEOFF_INSTANCE": os.environ["ONEOFF_INSTANCE"]}
    worker = br.start_worker(folder)
    try:
        print("  [SQLite + filesystem broker]")
        br.bench_latency(service, n_latency, image)
        br.bench_throughput(service, n_throughput, image, worker)
        rate, _span = br.ingest_once(service, lines)
        rss = br.peak_rss_mb(worker.pid)
    finally:
        br.stop_worker(worker, env["ONEOFF_INSTANCE"])
    bare = br.bare_read(image, lines)
    print(f"(c) log ingest: one job printing {lines:,} lines on SQLite")
    print(f"    stored lines/s from startedAt: {rate:,.0f}; worker peak RSS {rss:.0f} MB")
    print(f"    bare `docker logs` to /dev/null: {bare:,.0f} lines/s; ratio {rate / bare:.2f}x")
    report({"part": "runner", "ingest": rate, "bare_read": bare, "rss": rss})


# --- 2. requests -------------------------------------------------------------------------------


def insert_jobs_sqlite(service, build, snapshot, count: int) -> None:
    """``common.insert_jobs`` for SQLite: the same rows, from a recursive CTE."""
    from django.db import connection

    from jobs.models import Job

    t0 = "'2026-01-01 00:00:00'"
    explicit = {
        "id": "'job-' || printf('%%020x', i)",
        "workspace_id": "%s",
        "service_id": "%s",
        "start_command": "'python manage.py task ' || i",
        "plan_id": "%s",
        "build_id": "%s",
        "env_snapshot_id": "%s",
        "status": (
            "CASE WHEN i %% 100 = 0 THEN 'running' WHEN i %% 10 = 1 THEN 'failed' "
            "WHEN i %% 10 = 2 THEN 'canceled' ELSE 'succeeded' END"
        ),
        "created_at": f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', {t0}, '+' || i || ' seconds')",
        "started_at": f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', {t0}, '+' || (i + 2) || ' seconds')",
        "finished_at": (
            "CASE WHEN i %% 100 = 0 THEN NULL ELSE "
            f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', {t0}, '+' || (i + 9) || ' seconds') END"
        ),
        "exit_code": "CASE WHEN i %% 10 = 1 THEN 1 WHEN i %% 100 = 0 THEN NULL ELSE 0 END",
        "billed_seconds": "CASE WHEN i %% 100 = 0 THEN NULL ELSE 7 END",
        "cost": "CASE WHEN i %% 100 = 0 THEN NULL ELSE 0.000019 END",
    }
    firsts = [service.workspace_id, service.id, service.plan_id, build.id, snapshot.id]
    columns, values, params = [], [], []
    for field in Job._meta.concrete_fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.column in explicit:
            values.append(explicit[field.column])
            if explicit[field.column] == "%s":
                params.append(firsts.pop(0))
        elif field.null and not field.has_default():
            values.append("NULL")
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
        f"INSERT INTO {Job._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM n"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [count, *params])
        cursor.execute("ANALYZE")


def insert_lines(job, count: int) -> None:
    """``bench_dashboard.insert_lines``, on either database."""
    from django.db import connection

    from jobs.models import Job, JobLogLine

    if connection.vendor == "postgresql":
        from bench_dashboard import insert_lines as on_postgres

        on_postgres(job, count)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %s - 1) "
            f"INSERT INTO {JobLogLine._meta.db_table} (job_id, seq, timestamp, stream, text) "
            "SELECT %s, i, strftime('%%Y-%%m-%%d %%H:%%M:%%f', '2026-02-01', "
            "'+' || (i / 1000.0) || ' seconds'), CASE WHEN i %% 10 = 0 THEN 2 ELSE 1 END, "
            "'step ' || i || ': processed batch <' || (i %% 977) || '> & moved on' FROM n",
            [count, job.pk],
        )
        cursor.execute("ANALYZE")
    Job.objects.filter(pk=job.pk).update(log_line_count=count)


def measure(fn, n: int) -> dict:
    fn()
    fn()  # warm up (plans, caches, the session)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": statistics.median(times), "p95": percentile(times, 95)}


def requests_part(database: str, quick: bool) -> None:
    jobs, lines, n = (2_000, 5_000, 30) if quick else (1_000_000, 1_000_000, 300)
    if database == "sqlite":
        embedded_env(Path(tempfile.mkdtemp(prefix="oneoff-bench-embedded-")))
        measure_requests(database, jobs, lines, n)
    else:
        os.environ["ONEOFF_VAR_DIR"] = tempfile.mkdtemp(prefix="oneoff-bench-embedded-")
        with_own_database(
            "oneoff_bench_embedded", lambda: measure_requests(database, jobs, lines, n)
        )


def measure_requests(database: str, jobs: int, lines: int, n: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client, override_settings

    from jobs.models import EnvSnapshot, Job, JobStatus
    from services.models import ApiKey

    call_command("migrate", verbosity=0)
    workspace, service, build, user = bench_service(
        admin_email="bench@example.test", log_retention_days=30
    )
    snapshot = EnvSnapshot.capture(service)
    _, secret = ApiKey.issue(user, workspace)
    started = time.perf_counter()
    if connection.vendor == "sqlite":
        insert_jobs_sqlite(service, build, snapshot, jobs)
    else:
        insert_jobs(service, build, snapshot, jobs)
    big = Job.objects.filter(service=service, status=JobStatus.RUNNING).order_by("-created_at")[0]
    insert_lines(big, lines)
    print(
        f"  [{database}] inserted {jobs:,} jobs and {lines:,} log lines in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )

    api = Client(headers={"Authorization": f"Bearer {secret}"})
    browser = Client()
    browser.force_login(user)

    def get(client, url, expect=b""):
        def call():
            response = client.get(url)
            if response.status_code != 200 or expect not in response.content:
                raise SystemExit(f"unexpected answer from {url}: {response.status_code}")

        return call

    figures = {}
    with override_settings(DEBUG=False):
        browser.get(f"/services/{service.id}/jobs/")  # the session remembers the workspace
        for name, call in (
            ("api_list", get(api, f"/v1/services/{service.id}/jobs?limit=20", b"job-")),
            ("jobs_page", get(browser, f"/services/{service.id}/jobs/", b"job-")),
            ("job_page", get(browser, f"/services/{service.id}/jobs/{big.id}/", b"step ")),
        ):
            figures[name] = measure(call, n)
            print(
                f"  [{database}] {name:<10} p50 {figures[name]['p50']:7.2f} ms"
                f"  p95 {figures[name]['p95']:7.2f} ms  (n={n})",
                flush=True,
            )
    report({"part": "requests", "database": database, **figures})


# --- the run -----------------------------------------------------------------------------------


def child(args: list[str]) -> dict:
    """Run one part in a process of its own; its lines pass through, its RESULT comes back."""
    proc = subprocess.run(
        [sys.executable, __file__, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    result = {}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            result = json.loads(line.removeprefix(RESULT))
        else:
            print(line)
    if proc.returncode or not result:
        raise SystemExit(f"bench_embedded {' '.join(args)} failed (exit {proc.returncode})")
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--part", choices=["runner", "requests"])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    quick = ["--quick"] if args.quick else []
    if args.part == "runner":
        runner_part(args.quick)
        return 0
    if args.part == "requests":
        requests_part(args.database, args.quick)
        return 0
    print("1. the runner on the embedded default (SQLite, filesystem broker)", flush=True)
    child(["--part", "runner", *quick])
    print("2. requests: the embedded default (SQLite, database cache) beside PostgreSQL")
    sqlite = child(["--part", "requests", "--database", "sqlite", *quick])
    postgres = child(["--part", "requests", "--database", "postgres", *quick])
    print(f"  {'request':<10} {'SQLite p95':>11} {'PostgreSQL p95':>15} {'ratio':>7}")
    for name in ("api_list", "jobs_page", "job_page"):
        lite, pg = sqlite[name]["p95"], postgres[name]["p95"]
        print(f"  {name:<10} {lite:8.2f} ms {pg:12.2f} ms {lite / pg:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dashboard pages on PostgreSQL: the Jobs page, a job page and one log-tail poll stay fast on a
big service and a huge log.

One service holds 100,000 jobs and one running job of it holds 1,000,000 log lines
(``--quick``: 2,000 jobs, 20,000 lines), both made by ``INSERT … SELECT generate_series``.
Through Django's test client signed in as an admin (sessions, auth, CSRF, htmx middleware, the
ownership checks, the queries and the template: the whole server side of a request, without a
network), it measures p50/p95 of:

- a bare Django view rendering an empty template (the baseline: the cost of the stack itself),
- the Jobs page (full page, first 25 jobs), a status-filtered page and a page deep by cursor,
- the Jobs list's one poll (its head: new jobs, 25 unfinished rows, the chip counts) and a
  search by command,
- the job page of the 1,000,000-line job (renders its latest 1,000 lines),
- one log-tail poll of that job (the htmx request a running job's page makes every second),

and prints each as a ratio to the baseline. It also streams the whole log once through the
download view (lines/s and how much the process grew) and times one server-side search.
It creates and drops its own database, ``oneoff_bench_dash``, on the server of ``DATABASE_URL``
(default postgres://postgres@127.0.0.1:5432).

Targets (issue 6): each page and the poll under 50 ms p95.
"""

import argparse
import os
import resource
import statistics
import sys
import time
import types

from common import bench_service, insert_jobs, percentile, vacuum, with_own_database

DB_NAME = "oneoff_bench_dash"
TARGET_P95_MS = 50


def measure(label: str, fn, n: int) -> dict:
    from django.db import connection

    queries = []
    with connection.execute_wrapper(
        lambda execute, sql, *a: queries.append(sql) or execute(sql, *a)
    ):
        fn()  # warm up (query plans, template caches), counting the queries once
    times, cpu = [], []
    for _ in range(n):
        started, cpu_started = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return {
        "label": label,
        "p50": statistics.median(times),
        "p95": percentile(times, 95),
        # CPU time of this process (client and server, not PostgreSQL): the part that does not
        # depend on how busy the machine is.
        "cpu": statistics.median(cpu),
        "queries": len(queries),
        "n": n,
    }


def insert_lines(job, count: int) -> None:
    """``count`` log lines from seq 0, one a millisecond, every tenth on stderr."""
    from django.db import connection

    from jobs.models import Job, JobLogLine

    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {JobLogLine._meta.db_table} (job_id, seq, timestamp, stream, text) "
            "SELECT %s, i, %s::timestamptz + i * interval '1 millisecond', "
            "CASE WHEN i %% 10 = 0 THEN 2 ELSE 1 END, "
            "'step ' || i || ': processed batch <' || (i %% 977) || '> & moved on' "
            "FROM generate_series(0, %s - 1) AS i",
            [job.pk, "2026-02-01T00:00:00+00:00", count],
        )
        vacuum(cursor, JobLogLine._meta.db_table)
    Job.objects.filter(pk=job.pk).update(log_line_count=count)


# Log searches (the job page's search box, ``GET /v1/logs`` ``text`` syntax): a line that occurs
# once, a term in one line in 977, one in every line, one in none, an anchored regular expression
# and a wildcard.
SEARCHES = [
    "step 654321:",
    "batch <976>",
    "moved on",
    "no such text",
    "/^step 9999[0-9]:/",
    "step 12345*moved",
]


def measure_searches(args, big, client, job_url: str, htmx: dict) -> dict:
    """Chunk the big log for search (timed), then time each search with the chunks and without
    them (a scan of the log: the baseline, in the same run)."""
    from django.test import override_settings

    from jobs.logs import index

    started = time.perf_counter()
    with override_settings(LOG_INDEX_MIN_LINES=1):  # quick mode's log is under the default
        index.index_job(big.pk)
    chunk_seconds = time.perf_counter() - started
    big.refresh_from_db()
    assert big.log_indexed_through is not None
    rows = []
    n_on, n_off = args.requests, max(5, args.requests // 20)
    for term in SEARCHES:
        params = {"q": term}
        headers = {**htmx, "HX-Target": "log-viewer"}

        def call(params=params, headers=headers):
            response = client.get(job_url, params, headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"search {params} answered {response.status_code}")
            return response.content.count(b'<li class="line')

        found = call()
        on = measure(f"search {term!r}", call, n_on)
        with override_settings(LOG_INDEX_MIN_LINES=0):  # no chunks: a scan
            assert call() == found, term
            off = measure(f"search {term!r}, scan", call, n_off)
        rows.append((term, found, on, off))
    return {"chunk_seconds": chunk_seconds, "rows": rows}


def print_searches(args, searches: dict) -> None:
    seconds = searches["chunk_seconds"]
    print(
        f"  log search, {args.lines:,}-line log: chunked for search in {seconds:.1f} s "
        f"({args.lines / seconds:,.0f} lines/s, by the periodic task, off the ingest path)"
    )
    print(
        f"  {'search (job page, htmx)':<34} {'lines':>6} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'scan p50':>9} {'scan p95':>9} {'scan/chunks':>12}"
    )
    for term, found, on, off in searches["rows"]:
        print(
            f"  {term!r:<34} {found:6d} {on['p50']:8.2f} {on['p95']:8.2f} {off['p50']:9.2f} "
            f"{off['p95']:9.2f} {off['p50'] / on['p50']:11.1f}x"
        )
    worst = max(on["p95"] for _, _, on, _ in searches["rows"])
    print(f"  worst search p95: {worst:.2f} ms (target < {TARGET_P95_MS} ms)")


def run(args) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.decorators import login_required
    from django.core.management import call_command
    from django.http import HttpResponse
    from django.template import engines
    from django.test import Client, override_settings
    from django.urls import include, path

    from jobs.models import EnvSnapshot, Job, JobStatus

    call_command("migrate", verbosity=0)
    _, service, build, user = bench_service(admin_email="bench@example.test", log_retention_days=30)
    snapshot = EnvSnapshot.capture(service)

    started = time.perf_counter()
    insert_jobs(service, build, snapshot, args.jobs)
    print(f"  inserted {args.jobs:,} jobs in {time.perf_counter() - started:.1f} s")
    big = Job.objects.filter(service=service, status=JobStatus.RUNNING).order_by("-created_at")[0]
    started = time.perf_counter()
    insert_lines(big, args.lines)
    print(f"  inserted {args.lines:,} log lines in {time.perf_counter() - started:.1f} s")

    # The baseline: a bare view rendering an empty template, behind the same middleware.
    empty = engines["django"].from_string("")

    def empty_view(request):
        return HttpResponse(empty.render({}, request))

    urls = types.ModuleType("bench_dashboard_urls")
    urls.urlpatterns = [
        path("bench-empty/", empty_view),
        # The floor of any signed-in page: the session and the user are loaded.
        path("bench-empty-signed-in/", login_required(empty_view)),
        path("", include("config.urls")),
    ]
    sys.modules[urls.__name__] = urls

    client = Client()
    client.force_login(user)
    htmx = {"HX-Request": "true"}
    depth = args.jobs // 2
    deep_cursor = (
        Job.objects.filter(service=service).order_by("-created_at", "-id").values("id")[depth]["id"]
    )
    last_seq = args.lines - 1
    jobs_url = f"/services/{service.id}/jobs/"
    job_url = f"/services/{service.id}/jobs/{big.id}/"

    def get(url, params=None, headers=None, expect=b""):
        def call():
            response = client.get(url, params or {}, headers=headers or {})
            if response.status_code != 200 or expect not in response.content:
                raise SystemExit(f"unexpected answer from {url}: {response.status_code}")

        return call

    n = args.requests
    results = []
    with override_settings(ROOT_URLCONF=urls.__name__, DEBUG=False):
        client.get(jobs_url)  # the session remembers the workspace once, as in real use
        baseline = measure("bare view, empty template (baseline)", get("/bench-empty/"), n)
        results.append(
            measure(
                "same, behind login_required (session, user)", get("/bench-empty-signed-in/"), n
            )
        )
        results.append(measure("Jobs page (full page, 25 jobs)", get(jobs_url, expect=b"job-"), n))
        results.append(
            measure(
                "Jobs page, status=failed (htmx table)",
                get(jobs_url, {"status": "failed"}, {**htmx, "HX-Target": "jobs"}, b"job-"),
                n,
            )
        )
        results.append(
            measure(
                f"Jobs page, load more {depth:,} deep (cursor)",
                get(jobs_url, {"cursor": deep_cursor}, htmx, b"job-"),
                n,
            )
        )
        # The Jobs list's one poll (static/js/jobslist.js): nothing new, 25 unfinished rows.
        newest = Job.objects.filter(service=service).order_by("-created_at", "-id")[0]
        unfinished = ",".join(
            Job.objects.filter(service=service, status=JobStatus.RUNNING).values_list(
                "id", flat=True
            )[:25]
        )
        results.append(
            measure(
                "Jobs list head poll (25 unfinished rows)",
                get(
                    f"{jobs_url}head/",
                    {"newest": newest.id, "ids": unfinished},
                    expect=b"chip-counts",
                ),
                n,
            )
        )
        results.append(
            measure(
                "Jobs page, search by command (htmx table)",
                get(jobs_url, {"q": "task 4242"}, {**htmx, "HX-Target": "jobs"}, b"job-"),
                n,
            )
        )
        results.append(
            measure(
                f"job page, {args.lines:,}-line log (latest 1,000)",
                get(job_url, expect=f'id="L{last_seq}"'.encode()),
                max(10, n // 2),
            )
        )
        results.append(
            measure(
                "log-tail poll (20 new lines)",
                get(
                    f"{job_url}logs/",
                    {"after": last_seq - 20, "status": "running"},
                    htmx,
                    b'id="log-poller"',
                ),
                n,
            )
        )
        results.append(
            measure(
                "log-tail poll (nothing new)",
                get(f"{job_url}logs/", {"after": last_seq, "status": "running"}, htmx),
                n,
            )
        )

        # Download: stream the whole log once; the process must not grow with the log.
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        response = client.get(f"{job_url}logs.txt")
        size = lines = 0
        for chunk in response.streaming_content:
            size += len(chunk)
            lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        assert lines == args.lines, (lines, args.lines)
        searches = measure_searches(args, big, client, job_url, htmx)

    print(
        f"  {args.jobs:,} jobs in one service; one running job with {args.lines:,} log lines; "
        f"{n} requests per measurement (DEBUG off, PostgreSQL "
        f"{settings.DATABASES['default']['NAME']})"
    )
    print(
        f"  {'':<46} {'p50 ms':>8} {'p95 ms':>8} {'p50 ratio':>10} {'CPU p50 ms':>11} "
        f"{'queries':>8}"
    )
    for r in [baseline, *results]:
        ratio = r["p50"] / baseline["p50"]
        print(
            f"  {r['label']:<46} {r['p50']:8.2f} {r['p95']:8.2f} {ratio:9.1f}x {r['cpu']:11.2f} "
            f"{r['queries']:8d}"
        )
    print(
        f"  download: {lines:,} lines, {size / 1e6:.1f} MB streamed in {elapsed:.1f} s "
        f"({lines / elapsed:,.0f} lines/s); max RSS grew by {grown_mb:.0f} MB"
    )
    print_searches(args, searches)
    worst = max(r["p95"] for r in results[1:] + [on for _, _, on, _ in searches["rows"]])
    print(f"  worst p95: {worst:.2f} ms (target < {TARGET_P95_MS} ms)")
    print(f"  targets met: {'yes' if worst < TARGET_P95_MS else 'no'}")
    print(f"  load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 jobs, 20,000 lines (CI)")
    parser.add_argument("--jobs", type=int, help="jobs in the service (default 100,000)")
    parser.add_argument("--lines", type=int, help="log lines of the big job (default 1,000,000)")
    parser.add_argument("--requests", type=int, help="requests per measurement")
    args = parser.parse_args()
    args.jobs = args.jobs or (2_000 if args.quick else 100_000)
    args.lines = args.lines or (20_000 if args.quick else 1_000_000)
    args.requests = args.requests or (20 if args.quick else 200)

    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    return with_own_database(DB_NAME, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

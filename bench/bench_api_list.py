"""List-jobs API on PostgreSQL: keyset pages cost the same at any depth.

One service holds 1,000,000 jobs (``--quick``: 5,000), made by one ``INSERT … SELECT
generate_series``. Through Django's test client (auth, rate limit, query, JSON: the whole
request), it measures p50/p95 of the first page, a page half-way down reached by cursor, and a
status-filtered page; and, in the same run, the same depth by OFFSET (the query alone) for
comparison. It creates and drops its own database, ``oneoff_bench_api``, on the server of
``DATABASE_URL`` (default postgres://postgres@127.0.0.1:5432).

Targets (issue 3): every list request p95 under 25 ms; the deep page within 1.5x the first.
It also times the first page part by part (issue 20): the key lookup, the rate-limit count, the
view (its queries and dicts) and the response schema with its JSON, each alone.
"""

import argparse
import os
import statistics
import sys
import time

from common import bench_service, insert_jobs, percentile, with_own_database

DB_NAME = "oneoff_bench_api"


def measure(label: str, fn, n: int) -> dict:
    fn()  # warm up (plans, caches)
    times, cpu = [], []
    for _ in range(n):
        started, cpu_started = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    result = {"label": label, "p50": statistics.median(times), "p95": percentile(times, 95)}
    # CPU time of this process: the part that does not depend on how busy the machine is.
    print(
        f"  {label:<42} p50 {result['p50']:8.2f} ms  p95 {result['p95']:8.2f} ms  "
        f"(client+server CPU p50 {statistics.median(cpu):6.2f} ms, n={n})"
    )
    return result


def run(args) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from api.pagination import encode_cursor
    from jobs.models import EnvSnapshot, Job
    from services.models import ApiKey

    call_command("migrate", verbosity=0)
    workspace, service, build, user = bench_service(admin_email="bench@example.test")
    snapshot = EnvSnapshot.capture(service)
    _, secret = ApiKey.issue(user, workspace)

    started = time.perf_counter()
    insert_jobs(service, build, snapshot, args.jobs)
    print(f"  inserted {args.jobs:,} jobs in {time.perf_counter() - started:.1f} s")

    depth = args.jobs // 2
    ordered = Job.objects.filter(service=service).order_by("-created_at", "-id")
    anchor = ordered.values("created_at", "id")[depth - 1]
    cursor = encode_cursor(anchor["created_at"], anchor["id"])

    client = Client(headers={"Authorization": f"Bearer {secret}"})
    url = f"/v1/services/{service.id}/jobs"

    def get(params):
        def call():
            response = client.get(url, params)
            if response.status_code != 200 or len(response.json()) != 20:
                raise SystemExit(f"unexpected answer: {response.status_code} {response.content!r}")

        return call

    def offset_query():
        page = list(
            ordered.select_related("build", "env_snapshot", "created_by", "canceled_by").defer(
                "env_snapshot__data"
            )[depth : depth + 20]
        )
        assert len(page) == 20

    def keyset_query():
        page = list(
            ordered.select_related("build", "env_snapshot", "created_by", "canceled_by")
            .defer("env_snapshot__data")
            .filter(created_at__lte=anchor["created_at"])
            .exclude(created_at=anchor["created_at"], pk__gte=anchor["id"])[:20]
        )
        assert len(page) == 20

    if args.explain:
        from django.db import connection

        from api.routers.jobs import list_jobs  # noqa: F401  (the queries below are the view's)

        with connection.cursor() as cur:
            for label, qs in (
                ("deep page by cursor", ordered.filter(created_at__lte=anchor["created_at"])
                 .exclude(created_at=anchor["created_at"], pk__gte=anchor["id"])[:20]),
                ("status=failed page", ordered.filter(status__in=["failed"])[:20]),
                ("status=failed,canceled deep", ordered.filter(status__in=["failed", "canceled"],
                 created_at__lte=anchor["created_at"])
                 .exclude(created_at=anchor["created_at"], pk__gte=anchor["id"])[:20]),
            ):  # fmt: skip
                sql, params = qs.query.sql_with_params()
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                print(f"  EXPLAIN {label}:")
                for (line,) in cur.fetchall():
                    print("    " + line)

    n = args.requests
    print(f"  {args.jobs:,} jobs in one service; deep page at depth {depth:,}; limit 20")
    first = measure("API first page", get({"limit": 20}), n)
    deep = measure(f"API page {depth:,} deep (cursor)", get({"limit": 20, "cursor": cursor}), n)
    status = measure("API status=failed page", get({"limit": 20, "status": "failed"}), n)
    status2 = measure(
        "API status=failed,canceled page, deep",
        get({"limit": 20, "status": "failed,canceled", "cursor": cursor}),
        n,
    )
    keyset = measure(f"query alone: keyset at {depth:,}", keyset_query, n)
    offset = measure(f"query alone: OFFSET {depth:,}", offset_query, max(5, n // 10))

    parts = breakdown(service, secret, n)

    api_results = [first, deep, status, status2]
    worst_p95 = max(r["p95"] for r in api_results)
    print(f"  deep/first p50 ratio: {deep['p50'] / first['p50']:.2f}x (target <= 1.5x)")
    print(
        f"  OFFSET/keyset query p50 ratio at the same depth: {offset['p50'] / keyset['p50']:.1f}x"
    )
    print(f"  worst API p95: {worst_p95:.2f} ms (target < 25 ms)")
    met = worst_p95 < 25 and deep["p50"] <= 1.5 * first["p50"]
    print(f"  targets met: {'yes' if met else 'no'}")
    accounted = sum(part["p50"] for part in parts)
    print(
        f"  the first page's p50 {first['p50']:.2f} ms: the parts above account for "
        f"{accounted:.2f} ms; the rest ({first['p50'] - accounted:.2f} ms) is the test client, "
        "the middleware, routing, parameter parsing and the response object"
    )
    print(f"  load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


def breakdown(service, secret: str, n: int) -> list[dict]:
    """Where the first page's time goes (issue 20): each part of the request the view makes,
    timed alone: the key lookup, the rate-limit count, the page's queries, and the response
    schema's validation and JSON (what Django Ninja does with the view's return value)."""
    import json

    from django.test import RequestFactory
    from ninja.responses import NinjaJSONEncoder
    from pydantic import TypeAdapter

    from api.auth import ApiKeyAuth
    from api.routers.jobs import list_jobs
    from api.schemas.jobs import JobListQuery, JobWithCursor
    from services import limits
    from services.models import ApiKey

    key = ApiKey.authenticate(secret)
    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    auth = ApiKeyAuth()
    auth(request)  # sets request.auth
    filters = JobListQuery()
    result = list_jobs(request, service.id, filters)
    adapter = TypeAdapter(list[JobWithCursor])

    def serialise():
        body = adapter.validate_python(result)
        json.dumps(
            adapter.dump_python(body, by_alias=True, exclude_none=True), cls=NinjaJSONEncoder
        )

    print("  the first page, part by part (each timed alone):")
    return [
        measure("  key lookup (ApiKey.authenticate)", lambda: ApiKey.authenticate(secret), n),
        measure(
            "  rate limit (three buckets, one cache)",
            lambda: limits.hit("read", user=key.user, workspace=key.workspace, api_key=key),
            n,
        ),
        measure(
            "  the view: its queries, dicts", lambda: list_jobs(request, service.id, filters), n
        ),
        measure("  response schema and JSON", serialise, n),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 jobs (CI)")
    parser.add_argument("--jobs", type=int, help="jobs in the service (default 1,000,000)")
    parser.add_argument("--requests", type=int, help="requests per measurement")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args()
    args.jobs = args.jobs or (5_000 if args.quick else 1_000_000)
    args.requests = args.requests or (30 if args.quick else 200)

    # Measure the API, not the rate limiter refusing us.
    for name in ("READ", "WRITE", "JOB_CREATE"):
        os.environ[f"API_RATE_LIMIT_{name}"] = "100000000/h"
    return with_own_database(DB_NAME, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

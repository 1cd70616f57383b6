"""List-jobs API on PostgreSQL: keyset pages cost the same at any depth.

One service holds 1,000,000 jobs (``--quick``: 5,000), made by one ``INSERT … SELECT
generate_series``. Through Django's test client (auth, rate limit, query, JSON: the whole
request), it measures p50/p95 of the first page, a page half-way down reached by cursor, and a
status-filtered page; and, in the same run, the same depth by OFFSET (the query alone) for
comparison. It creates and drops its own database, ``oneoff_bench_api``, on the server of
``DATABASE_URL`` (default postgres://postgres@127.0.0.1:5432).

Targets (issue 3): every list request p95 under 25 ms; the deep page within 1.5x the first.
Issue 20: the first page p95 at most 10 ms. It also times the first page part by part: the key
lookup, the rate-limit count, the view's queries, and the job dicts with their JSON, each alone;
the same request through Django's WSGI handler called directly (what a WSGI server calls, without
the test client); and, as the baseline in the same run, the first page with the compiled queries
of ``services.prepared`` switched off (the ORM compiles each query and PostgreSQL plans it, as
before issue 20).

Scaling (issue 20): the first page, the deep page and the status page are timed at 10,000, then
100,000 jobs before the full 1,000,000 (``--quick``: 1,000 and 5,000), the table growing in
place; the table is printed and written to ``bench/out/list_scaling.json``.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from common import bench_service, insert_jobs, percentile, with_own_database

DB_NAME = "oneoff_bench_api"
OUT = Path(__file__).resolve().parent / "out" / "list_scaling.json"


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

    client = Client(headers={"Authorization": f"Bearer {secret}"})
    url = f"/v1/services/{service.id}/jobs"
    ordered = Job.objects.filter(service=service).order_by("-created_at", "-id")

    def get(params):
        def call():
            response = client.get(url, params)
            if response.status_code != 200 or len(response.json()) != 20:
                raise SystemExit(f"unexpected answer: {response.status_code} {response.content!r}")

        return call

    def cursor_at(depth: int) -> tuple[dict, str]:
        anchor = ordered.values("created_at", "id")[depth - 1]
        return anchor, encode_cursor(anchor["created_at"], anchor["id"])

    # Scaling: the same requests on a table that grows in place to the full size.
    sizes = [size for size in args.sizes if size < args.jobs] + [args.jobs]
    inserted, scaling = 0, []
    for size in sizes:
        started = time.perf_counter()
        insert_jobs(service, build, snapshot, size - inserted, first=inserted + 1)
        print(f"  inserted {size - inserted:,} jobs in {time.perf_counter() - started:.1f} s")
        inserted = size
        if size == args.jobs:
            break
        print(f"  {size:,} jobs:")
        _, scale_cursor = cursor_at(size // 2)
        scaling.append(
            {
                "jobs": size,
                "first": measure("API first page", get({"limit": 20}), args.requests),
                "deep": measure(
                    "API page half-way deep (cursor)",
                    get({"limit": 20, "cursor": scale_cursor}),
                    args.requests,
                ),
                "status": measure(
                    "API status=failed page", get({"limit": 20, "status": "failed"}), args.requests
                ),
                "load": os.getloadavg()[0],
            }
        )

    depth = args.jobs // 2
    anchor, cursor = cursor_at(depth)

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
    handler = measure(
        "API first page, WSGI handler (no test client)", wsgi_get(url, secret, "limit=20"), n
    )
    from services import prepared

    prepared.enabled = False
    try:
        orm = measure("API first page, compiled queries off", get({"limit": 20}), n)
    finally:
        prepared.enabled = True
    again = measure("API first page, compiled queries on again", get({"limit": 20}), n)

    parts = breakdown(service, secret, n)
    scaling.append(
        {"jobs": args.jobs, "first": first, "deep": deep, "status": status,
         "load": os.getloadavg()[0]}
    )  # fmt: skip
    print_scaling(scaling, args)

    api_results = [first, deep, status, status2]
    worst_p95 = max(r["p95"] for r in api_results)
    print(f"  deep/first p50 ratio: {deep['p50'] / first['p50']:.2f}x (target <= 1.5x)")
    print(
        f"  OFFSET/keyset query p50 ratio at the same depth: {offset['p50'] / keyset['p50']:.1f}x"
    )
    print(f"  worst API p95: {worst_p95:.2f} ms (target < 25 ms)")
    print(
        f"  first page p95 {first['p95']:.2f} ms (issue 20 target <= 10 ms: "
        f"{'met' if first['p95'] <= 10 else 'not met'}); through the WSGI handler "
        f"{handler['p95']:.2f} ms; compiled queries off (baseline) p95 {orm['p95']:.2f} ms, "
        f"p50 {orm['p50'] / again['p50']:.2f}x the p50 with them on ({again['p50']:.2f} ms)"
    )
    met = worst_p95 < 25 and deep["p50"] <= 1.5 * first["p50"]
    print(f"  targets met: {'yes' if met else 'no'}")
    accounted = sum(part["p50"] for part in parts)
    print(
        f"  the first page's p50 {first['p50']:.2f} ms: the parts above account for "
        f"{accounted:.2f} ms; the rest ({first['p50'] - accounted:.2f} ms) is the middleware, "
        "routing, parameter parsing and the response object, and the test client "
        f"(p50 {first['p50'] - handler['p50']:.2f} ms more than the WSGI handler alone)"
    )
    print(f"  load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


def wsgi_get(url: str, secret: str, query: str):
    """The request as a WSGI server hands it to Django: ``WSGIHandler`` called with an environ,
    the body read to the end (no test client: no request building, signals or response
    decoding of its own)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    app = WSGIHandler()
    environ = RequestFactory()._base_environ(
        PATH_INFO=url, QUERY_STRING=query, HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    status = []

    def start_response(line, headers, exc_info=None):
        status.append(line)

    def call():
        status.clear()
        body = b"".join(app(dict(environ), start_response))
        if not status[0].startswith("200") or body.count(b'"cursor"') != 20:
            raise SystemExit(f"unexpected answer: {status} {body[:200]!r}")

    return call


def breakdown(service, secret: str, n: int) -> list[dict]:
    """Where the first page's time goes (issue 20): each part of the request the view makes,
    timed alone: the key lookup, the rate-limit count, the page's queries (service, page), and
    the job dicts with their JSON (the view renders them once, ``api.responses.json_response``)."""
    from django.test import RequestFactory

    from api.auth import ApiKeyAuth
    from api.pagination import encode_cursor
    from api.responses import json_response
    from api.routers.jobs import _PAGE
    from api.schemas.jobs import job_dict
    from services import limits
    from services.access import service_in, with_relations
    from services.models import ApiKey

    key = ApiKey.authenticate(secret)
    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    auth = ApiKeyAuth()
    auth(request)  # sets request.auth
    shape = (20, 0, (), False)

    def queries():
        found = service_in(key.workspace, service.id)
        return with_relations(_PAGE.run(shape, service_id=found.pk), found.workspace, found.plan)

    page = queries()

    def serialise():
        data = [{"job": job_dict(j), "cursor": encode_cursor(j.created_at, j.id)} for j in page]
        json_response(request, data)

    print("  the first page, part by part (each timed alone):")
    return [
        measure("  key lookup (ApiKey.authenticate)", lambda: ApiKey.authenticate(secret), n),
        measure(
            "  rate limit (three buckets, one cache)",
            lambda: limits.hit("read", user=key.user, workspace=key.workspace, api_key=key),
            n,
        ),
        measure("  the view's queries (service, page)", queries, n),
        measure("  job dicts and their JSON", serialise, n),
    ]


def print_scaling(scaling: list[dict], args) -> None:
    print("  scaling: p50 / p95 ms by jobs in the service")
    print(
        f"  {'jobs':>10} {'first page':>18} {'half-way deep':>18} {'status=failed':>18} {'load':>6}"
    )
    for row in scaling:
        cells = " ".join(
            f"{row[k]['p50']:7.2f} / {row[k]['p95']:7.2f}" for k in ("first", "deep", "status")
        )
        print(f"  {row['jobs']:>10,} {cells} {row['load']:6.2f}")
    if args.quick:
        return  # CI's tiny sizes are no figures to keep
    OUT.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "bench/bench_api_list.py",
        "what": "GET /v1/services/{id}/jobs through Django's test client, limit 20; ms",
        "requests_per_point": args.requests,
        "cores": os.cpu_count(),
        "rows": [
            {
                "jobs": row["jobs"],
                "load_average": round(row["load"], 2),
                **{
                    f"{k}_{q}": round(row[k][q], 3)
                    for k in ("first", "deep", "status")
                    for q in ("p50", "p95")
                },
            }
            for row in scaling
        ],
    }
    OUT.write_text(json.dumps(document, indent=2) + "\n")
    print(f"  written: {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 jobs (CI)")
    parser.add_argument("--jobs", type=int, help="jobs in the service (default 1,000,000)")
    parser.add_argument("--requests", type=int, help="requests per measurement")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args()
    args.jobs = args.jobs or (5_000 if args.quick else 1_000_000)
    args.sizes = [1_000] if args.quick else [10_000, 100_000]
    args.requests = args.requests or (30 if args.quick else 200)

    # Measure the API, not the rate limiter refusing us.
    for name in ("READ", "WRITE", "JOB_CREATE"):
        os.environ[f"API_RATE_LIMIT_{name}"] = "100000000/h"
    return with_own_database(DB_NAME, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

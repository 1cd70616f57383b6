"""API latency on the embedded SQLite while a chatty job's log is stored.

On SQLite every writer takes the one database-wide write lock, and an API request writes too
(the rate limiter's counters live in the database cache). A job printing flat out keeps its log
follower storing batches back to back; this measures what that does to the API. In a folder of
its own it makes the embedded configuration (a SQLite file in WAL mode, the database cache, the
default rate limits), then measures p50/p95 of GET /v1/services/{id}/jobs/{jobId} through
Django's test client: first with nothing else running (the baseline), then while a second
process stores a chatty job's log with the log follower's writer (``LogWriter``, fed as fast as
it takes lines, as from a job printing 200 MB; ``--quick``: 6 s of it).

Target (issue 14): p95 during the chatty job under 200 ms.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, bench_service, percentile

LINE = b"x" * 90  # ~100-byte lines, numbered in front


def configure(folder: Path) -> None:
    """The embedded defaults, in ``folder``: env read by config.settings at import."""
    for name in ("CACHE_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'oneoff.sqlite3'}"
    os.environ["ONEOFF_VAR_DIR"] = str(folder)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"


def ingest(job_id: str, seconds: float) -> int:
    """Store a chatty job's log for ``seconds``, as its follower's writer thread does."""
    import django

    django.setup()
    from jobs.logs.store import LogWriter

    writer = LogWriter.for_job(job_id)
    ts_ns = time.time_ns()
    number = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        chunk = []
        for _ in range(600):  # about one 64 KiB read of the json-file
            ts_ns += 1000
            chunk.append((ts_ns, 1, b"%d " % number + LINE + b"\n"))
            number += 1
        writer.add_batch(chunk)
        if writer.should_flush:
            writer.flush()
    writer.flush()
    print(f"  ingest: {writer.line_count:,} lines, {writer.stored_bytes / 1e6:.1f} MB stored")
    return 0


def setup() -> tuple[str, str, str]:
    import django

    django.setup()
    from django.core.management import call_command

    from jobs.models import EnvSnapshot, Job, JobStatus
    from services.models import ApiKey

    call_command("migrate", verbosity=0)
    workspace, service, build, user = bench_service(admin_email="bench@example.test")
    snapshot = EnvSnapshot.capture(service)
    _, secret = ApiKey.issue(user, workspace)
    job = Job.objects.create(
        workspace=workspace,
        service=service,
        start_command="chatty",
        plan_id=service.plan_id,
        build=build,
        env_snapshot=snapshot,
        status=JobStatus.RUNNING,
    )
    return secret, f"/v1/services/{service.id}/jobs/{job.id}", job.id


def measure(label: str, call, n: int) -> dict:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)  # a client's pace, not a tight loop
    result = {"p50": statistics.median(times), "p95": percentile(times, 95), "max": max(times)}
    print(
        f"  {label:<34} p50 {result['p50']:8.2f} ms  p95 {result['p95']:8.2f} ms  "
        f"max {result['max']:8.2f} ms  (n={n})"
    )
    return result


def run(args) -> dict:
    """Baseline and chatty measurements; returns both (the test reads them)."""
    secret, url, job_id = setup()
    from django.db import connection
    from django.test import Client

    client = Client(headers={"Authorization": f"Bearer {secret}"})

    def get():
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"unexpected answer: {response.status_code} {response.content!r}")
        connection.close()  # each request on its own connection, as gunicorn's workers do

    get()  # warm up
    baseline = measure("GET job, nothing else running", get, args.requests)
    child = subprocess.Popen(
        [sys.executable, __file__, "--ingest", job_id, "--seconds", str(args.seconds)],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    try:
        time.sleep(1.0)  # the writer at full speed
        chatty = measure("GET job, chatty job's log ingest", get, args.requests)
    finally:
        child.wait(args.seconds + 60)
    if child.returncode:
        raise SystemExit(f"the ingest process failed ({child.returncode})")
    ratio = chatty["p95"] / baseline["p95"]
    print(f"  chatty/baseline p95 ratio: {ratio:.1f}x")
    met = chatty["p95"] < 200
    print(f"  p95 during the chatty job {chatty['p95']:.0f} ms (target < 200 ms): met: {met}")
    print(f"  load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return {"baseline": baseline, "chatty": chatty, "ratio": ratio}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 s of ingest, 50 requests (CI)")
    parser.add_argument("--seconds", type=float, help="seconds of ingest (default 30)")
    parser.add_argument("--requests", type=int, help="requests per measurement (default 300)")
    parser.add_argument("--json", metavar="PATH", help="also write the results there (tests)")
    parser.add_argument("--ingest", metavar="JOB_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.seconds = args.seconds or (6.0 if args.quick else 30.0)
    args.requests = args.requests or (50 if args.quick else 300)
    if args.ingest:
        return ingest(args.ingest, args.seconds)
    # High limits: the rate limiter still counts every request in the database cache (the
    # write an API request makes), it just never refuses one here.
    for name in ("READ", "WRITE", "JOB_CREATE"):
        os.environ[f"API_RATE_LIMIT_{name}"] = "100000000/h"
    with tempfile.TemporaryDirectory(prefix="oneoff-bench-sqlite-") as folder:
        configure(Path(folder))
        results = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Webhooks: what they add to a job's end, and what one delivery costs.

1. The job-end path. A running job ended the way the runner ends it
   (``runner.record_exit``: ``transition`` of the compare-and-set, then the outbox rows) in a
   workspace with one webhook that wants ``job_run_ended``, against the same with no webhook
   (the event is then one SELECT and nothing written), and against the bare compare-and-set
   UPDATE the runner made before webhooks. Reported: p50/p95 ms of each, the ratios.
2. One delivery. ``delivery.attempt`` of a ``job_run_ended`` event whose job has 50+ log lines
   (claim, the body with the job and its last 50 lines masked, the Standard Webhooks signature,
   the HTTPS POST to a local receiver, the attempt recorded), against a bare ``http.client``
   POST of the same body over a new TLS connection to the same receiver (the floor: what any
   sender pays). Reported: p50/p95 ms of each, the ratio.

Creates and drops its own database, ``oneoff_bench_webhooks``, on the server of
``DATABASE_URL``, and sends the first attempts' messages to kombu's in-memory broker (part 1 pays
for that send, not for a Redis round trip). ``--quick``: 20 rounds instead of 200.
"""

import argparse
import http.client
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, percentile, with_own_database

DB_NAME = "oneoff_bench_webhooks"


def report(label: str, times: list[float]) -> float:
    p50 = statistics.median(times)
    print(f"  {label:<58} p50 {p50:7.2f} ms  p95 {percentile(times, 95):7.2f} ms  (n={len(times)})")
    return p50


def run(args) -> int:
    import django

    sys.path.insert(0, str(ROOT))
    os.environ["EGRESS_ALLOW"] = "127.0.0.1"
    # The first attempt's message goes to an in-process broker: no worker takes it (part 2
    # makes the attempts itself), and no other run's worker sees it.
    os.environ["CELERY_BROKER_URL"] = "memory://"
    django.setup()
    from django.conf import settings

    from tests.helpers import make_pki

    pki = make_pki(Path(tempfile.mkdtemp(prefix="oneoff-bench-pki-")))
    settings.WEBHOOK_CA_FILE = pki.ca_file
    from common import bench_service
    from django.core.management import call_command
    from django.utils import timezone

    from jobs import runner
    from jobs.models import EnvSnapshot, Job, JobLogLine, JobStatus
    from services.models import EnvVar
    from tests.plugins.webhooks import HttpsReceiver
    from webhooks import delivery
    from webhooks.models import Delivery, Event, Webhook

    call_command("migrate", verbosity=0)
    workspace, service, build, _ = bench_service()
    EnvVar.objects.create(service=service, key="TOKEN", value="bench-secret-value")
    snapshot = EnvSnapshot.capture(service)
    receiver = HttpsReceiver(pki.server_pem).start()

    def running_job() -> Job:
        job = Job.objects.create(
            workspace=workspace,
            service=service,
            start_command="bench",
            plan=service.plan,
            build=build,
            env_snapshot=snapshot,
            status=JobStatus.RUNNING,
            started_at=timezone.now(),
        )
        now = timezone.now()
        JobLogLine.objects.bulk_create(
            # As ingest stores them: the env value masked (jobs.logs.mask).
            JobLogLine(job=job, seq=i, timestamp=now, text=f"line {i} ****")
            for i in range(1, 61)
        )
        return Job.objects.select_related("plan").get(pk=job.pk)

    state = {"ExitCode": 3, "FinishedAt": None, "OOMKilled": False}

    print("1. the job-end path (runner.record_exit), the three alternating")
    hook = Webhook.objects.create(
        workspace=workspace, name="bench", url=receiver.url, event_filter=["job_run_ended"]
    )
    plain, without, with_hook = [], [], []
    for _ in range(args.rounds):
        # As before webhooks: the bare compare-and-set UPDATE.
        job = running_job()
        started = time.perf_counter()
        ended = runner.outcome(job, state)
        assert Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(**ended)
        plain.append((time.perf_counter() - started) * 1000)
        for enabled, times in ((False, without), (True, with_hook)):
            Webhook.objects.filter(pk=hook.pk).update(enabled=enabled)
            job = running_job()
            started = time.perf_counter()
            assert runner.record_exit(job, state)
            times.append((time.perf_counter() - started) * 1000)
    before = report("plain UPDATE, no transition (before webhooks)", plain)
    base = report("no webhook wants it (one SELECT, nothing written)", without)
    hooked = report("one webhook (event + delivery written in the transaction)", with_hook)
    print(f"  ratio {hooked / base:.2f}x to no webhook, {hooked / before:.2f}x to the plain UPDATE")

    print("2. one delivery to a local HTTPS receiver (job_run_ended, 50 lines)")
    receiver.secret = hook.secret
    deliveries = list(Delivery.objects.order_by("pk").values_list("pk", flat=True))
    attempts, posts = [], []
    real_post = delivery.post

    def timed_post(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real_post(*args, **kwargs)
        finally:
            posts.append((time.perf_counter() - started) * 1000)

    delivery.post = timed_post
    for pk in deliveries:
        started = time.perf_counter()
        delivery.attempt(pk)
        attempts.append((time.perf_counter() - started) * 1000)
    assert len(receiver.received) == len(deliveries), "every delivery arrived"
    assert all(r.verified for r in receiver.received)
    body = Event.objects.exclude(body="").first().body
    context = ssl.create_default_context(cafile=pki.ca_file)
    bare = []
    for _ in deliveries:
        started = time.perf_counter()
        conn = http.client.HTTPSConnection("127.0.0.1", receiver.port, context=context)
        conn.request(
            "POST", "/hook", body=body.encode(), headers={"Content-Type": "application/json"}
        )
        conn.getresponse().read()
        conn.close()
        bare.append((time.perf_counter() - started) * 1000)
    floor = report("bare http.client POST of the same body (new TLS connection)", bare)
    made = report("delivery.attempt (claim, body, sign, POST, record)", attempts)
    report("  of which delivery.post (egress check, TLS, POST, answer)", posts)
    print(f"  ratio {made / floor:.2f}x; body {len(body):,} bytes; ", end="")
    print(f"'bench-secret-value' in it: {'bench-secret-value' in body}")
    assert json.loads(body)["data"]["logs"][-1]["text"] == "line 60 ****"
    receiver.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 rounds (CI)")
    parser.add_argument("--rounds", type=int, default=0)
    args = parser.parse_args()
    args.rounds = args.rounds or (20 if args.quick else 200)
    return with_own_database(DB_NAME, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

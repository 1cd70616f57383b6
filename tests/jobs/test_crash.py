"""Crash safety: the worker killed with SIGKILL, the Docker Engine unreachable, lost messages."""

import itertools
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from jobs import runner
from jobs.launch import create_job
from jobs.models import Job, JobStatus
from tests.helpers import wait_finished, wait_for, wait_status

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LINES = 3000
# Prints LINES numbered lines over about 3 seconds (a pause every 300 lines).
COUNTER = (
    f"i=0; while [ $i -lt {LINES} ]; do echo line $i; i=$((i+1)); "
    "[ $((i % 300)) = 0 ] && sleep 0.3; done; echo done >&2"
)


@pytest.mark.parametrize("source", ["auto", "api"])
def test_a_worker_killed_mid_job_resumes_without_gap_or_duplicate(live_worker, job_service, source):
    if source != "auto":
        live_worker.restart(JOB_LOG_SOURCE=source)
    job = create_job(job_service, COUNTER)

    def some_lines_stored():
        job.refresh_from_db()
        return job.status == JobStatus.RUNNING and 300 <= job.log_line_count < LINES

    wait_for(some_lines_stored, message="the first lines to be stored")
    live_worker.kill()  # SIGKILL: no shutdown of any kind
    stored_at_kill = Job.objects.get(pk=job.pk).log_line_count
    time.sleep(1.0)  # the job keeps printing while nobody follows it
    live_worker.start(JOB_LOG_SOURCE=source)
    wait_finished(job, timeout=30)
    assert job.status == JobStatus.SUCCEEDED
    assert stored_at_kill < LINES
    where = "the engine's logs endpoint" if source == "api" else "-json.log"
    followed = [line for line in live_worker.tail(400).splitlines() if job.id in line]
    assert sum(f"following the log of {job.id} from" in line for line in followed) >= 2
    assert all(where in line for line in followed if "following the log" in line)
    texts = list(job.log_lines.order_by("seq").values_list("text", flat=True))
    assert texts[:-1] == [f"line {i}" for i in range(LINES)]
    assert texts[-1] == "done"
    assert job.log_line_count == LINES + 1
    stamps = list(job.log_lines.order_by("seq").values_list("timestamp", flat=True))
    assert all(a < b for a, b in itertools.pairwise(stamps))
    if source != "auto":
        live_worker.restart()


def test_a_job_started_while_the_worker_is_down_finishes_after_restart(live_worker, job_service):
    job = create_job(job_service, "echo quick")
    wait_status(job, JobStatus.RUNNING)
    live_worker.kill()
    time.sleep(0.5)  # it exits while nobody watches
    live_worker.start()
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    assert list(job.log_lines.values_list("text", flat=True)) == ["quick"]


def test_pending_jobs_wait_for_an_unreachable_engine_and_start_when_it_is_back(
    live_worker, job_service, tmp_path
):
    # Stopping the shared dockerd would break everyone else's tests: the worker is pointed at
    # a socket nobody answers on, then at the real engine again.
    live_worker.restart(DOCKER_HOST=f"unix://{tmp_path}/nobody-home.sock")
    job = create_job(job_service, "echo back")

    def waiting_with_a_note():
        job.refresh_from_db()
        return job.note

    wait_for(waiting_with_a_note, message="the job to show why it waits")
    assert job.status == JobStatus.PENDING
    assert "Docker Engine" in job.note
    live_worker.restart()
    wait_finished(job, timeout=30)
    assert job.status == JobStatus.SUCCEEDED
    assert job.note == ""
    assert list(job.log_lines.values_list("text", flat=True)) == ["back"]


def test_a_lost_start_message_is_recovered_by_the_sweep(live_worker, job_service, monkeypatch):
    from jobs import launch

    def lost_on_the_way(job_id):  # recorded as sent; the broker never had it
        Job.objects.filter(pk=job_id).update(start_enqueued_at=timezone.now())
        return True

    monkeypatch.setattr(launch, "enqueue_start", lost_on_the_way)
    job = create_job(job_service, "echo swept")
    monkeypatch.undo()
    Job.objects.filter(pk=job.pk).update(created_at=job.created_at - timedelta(seconds=10))
    assert runner.sweep()["requeued"] == 0  # its message may still be on its way
    Job.objects.filter(pk=job.pk).update(
        start_enqueued_at=job.created_at - runner.START_MESSAGE_LIVE - timedelta(seconds=1)
    )
    assert runner.sweep()["requeued"] == 1
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED


@pytest.mark.parametrize("held", ["claimed", "prefetched"])
def test_starts_a_killed_worker_held_are_sent_again_when_its_successor_starts(
    live_worker, job_service, held
):
    """A worker killed holding a job's start message (claimed by this host mid-start, or only
    prefetched: unacked either way, so the broker redelivers it after its visibility timeout, an
    hour) left the job waiting for CLAIM_STALE and START_MESSAGE_LIVE (60 s) and a sweep: 68 to
    74 s in the chaos suite. The next worker on the host sends it again as it starts. No sweep
    runs here: without that the job never starts."""
    live_worker.kill()
    job = create_job(job_service, "echo resumed")
    from config.celery import app

    app.control.purge()  # the message died with the worker
    now = timezone.now()
    fields = {"start_enqueued_at": now}
    if held == "claimed":
        fields.update(host=settings.RUNNER_HOST, claimed_at=now)
    Job.objects.filter(pk=job.pk).update(**fields)
    assert runner.sweep()["requeued"] == 0  # the sweep still counts on that message
    live_worker.start()
    wait_finished(job, timeout=20)
    assert job.status == JobStatus.SUCCEEDED
    assert list(job.log_lines.values_list("text", flat=True)) == ["resumed"]
    assert "start message(s) again" in live_worker.tail(200)


def test_the_sweep_fails_jobs_that_never_started_in_time(live_worker, job_service, settings):
    live_worker.stop()
    job = create_job(job_service, "echo never")
    Job.objects.filter(pk=job.pk).update(note="Waiting for the Docker Engine on vm: refused")
    settings.JOB_START_TIMEOUT = 0
    assert runner.sweep()["timed_out"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "JOB_START_TIMEOUT" in job.reason["startError"]
    assert "refused" in job.reason["startError"]
    live_worker.start()


def test_the_worker_stops_cleanly_and_a_new_one_takes_over(live_worker, job_service):
    job = create_job(job_service, "echo a; sleep 2; echo b")
    wait_status(job, JobStatus.RUNNING)
    live_worker.stop()  # SIGTERM: a warm shutdown, the supervisor thread ends
    assert live_worker.process.returncode == 0, live_worker.tail()
    assert "Traceback" not in live_worker.tail(30)
    live_worker.start()
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    assert list(job.log_lines.order_by("seq").values_list("text", flat=True)) == ["a", "b"]

"""``maxConcurrentJobs`` in the runner, on PostgreSQL without Docker: the claim within a
service's limit under racing threads, the order jobs get slots in, the start messages a freed
slot sends, and JOB_START_TIMEOUT for a job that waits its turn."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs import runner
from jobs.launch import create_job
from jobs.models import Job, JobStatus
from services.models import Service

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def limited(service, make_build, monkeypatch):
    make_build(service)
    Service.objects.filter(pk=service.pk).update(max_concurrent_jobs=2)
    sent: list[str] = []
    monkeypatch.setattr(
        "jobs.launch.current_app.send_task", lambda name, args: sent.append(args[0])
    )
    service.sent = sent
    return service


def test_racing_claims_never_take_more_slots_than_the_limit(limited):
    jobs = [create_job(limited, f"echo {n}") for n in range(8)]
    barrier = threading.Barrier(len(jobs))
    results: dict[str, object] = {}

    def start(job):
        try:
            barrier.wait(5)
            results[job.id] = runner.claim_slot(Job.objects.get(pk=job.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=start, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    claimed = [job_id for job_id, result in results.items() if result]
    assert len(results) == 8
    assert sorted(claimed) == sorted(j.id for j in jobs[:2])  # the two oldest, whatever the order
    waiting = Job.objects.filter(pk__in=[j.id for j in jobs[2:]])
    assert all(j.note.startswith("waiting: ") for j in waiting)


def test_a_freed_slot_sends_the_oldest_waiting_jobs_start_messages(limited):
    jobs = [create_job(limited, f"echo {n}") for n in range(4)]
    limited.sent.clear()
    for job in jobs:
        runner.claim_slot(Job.objects.get(pk=job.pk))
    Job.objects.filter(pk=jobs[0].pk).update(status=JobStatus.RUNNING)
    assert runner.start_waiting(limited.id) == 0  # both slots held
    Job.objects.filter(pk=jobs[0].pk).update(status=JobStatus.SUCCEEDED)
    assert runner.start_waiting(limited.id) == 1
    assert limited.sent == [jobs[2].id]  # the oldest waiting, not the newest


def test_a_service_without_a_limit_sends_nothing_when_a_job_ends(service, make_build, monkeypatch):
    make_build(service)
    monkeypatch.setattr("jobs.launch.current_app.send_task", lambda *a, **k: pytest.fail("sent"))
    assert runner.start_waiting(service.id) == 0


def test_a_job_waiting_its_turn_is_not_failed_by_the_start_timeout(limited, settings):
    settings.JOB_START_TIMEOUT = 60
    old = timezone.now() - timedelta(seconds=600)
    waiting, stuck = (create_job(limited, "echo waits"), create_job(limited, "echo stuck"))
    Job.objects.filter(pk=waiting.pk).update(created_at=old, slot_waited_at=timezone.now())
    Job.objects.filter(pk=stuck.pk).update(created_at=old)
    counts = runner.sweep()
    assert counts["timed_out"] == 1
    assert Job.objects.get(pk=waiting.pk).status == JobStatus.PENDING
    assert Job.objects.get(pk=stuck.pk).status == JobStatus.FAILED
    # Once it got a slot, the timeout counts from its last wait.
    Job.objects.filter(pk=waiting.pk).update(slot_waited_at=old)
    assert runner.sweep()["timed_out"] == 1

"""What a job's end costs the database: the supervisor records every job's exit in its one
thread (``runner.record_exit``), 100 of them when 100 jobs end together."""

from django.utils import timezone

from jobs import runner
from jobs.models import Job, JobLogLine, JobStatus


def test_record_exit_costs_a_few_queries(make_job, django_assert_num_queries):
    job = make_job(status=JobStatus.RUNNING, started_at=timezone.now())
    job = Job.objects.select_related("plan", "canceled_by").get(pk=job.pk)
    state = {"ExitCode": 0, "FinishedAt": None, "OOMKilled": False}
    # The start as stored and the last line's time, in one query; the compare-and-set
    # (savepoint, UPDATE … RETURNING, release) with its service event (savepoint, the job's
    # row, insert, release) and the webhooks' look (savepoint, one query, release); the
    # service's concurrency limit.
    with django_assert_num_queries(12):
        assert runner.record_exit(job, state)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.billed_seconds == 1


def test_a_job_ends_no_earlier_than_its_start_or_last_line(make_job):
    job = make_job(status=JobStatus.RUNNING)
    started = timezone.now()
    last = started + timezone.timedelta(seconds=3)
    Job.objects.filter(pk=job.pk).update(started_at=started)  # as the log writer moves it
    JobLogLine.objects.create(job=job, seq=0, timestamp=started, stream=1, text="first")
    JobLogLine.objects.create(job=job, seq=1, timestamp=last, stream=1, text="last")
    stale = Job.objects.select_related("plan").get(pk=job.pk)
    stale.started_at = started + timezone.timedelta(seconds=1)  # what the pass read before
    before_start = (started - timezone.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    state = {"ExitCode": 1, "FinishedAt": before_start, "OOMKilled": False}
    assert runner.record_exit(stale, state)
    job.refresh_from_db()
    assert job.started_at == started
    assert job.finished_at == last
    assert job.billed_seconds == 3
    assert job.status == JobStatus.FAILED

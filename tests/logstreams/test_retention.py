"""Purging expired job and build log lines (jobs.logs.retention), on the real database."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from jobs.logs import retention
from jobs.logs.parse import StoredLine
from jobs.logs.store import LogWriter, insert_lines
from jobs.models import Job, JobLogLine, JobLogMark
from services.models import Build, BuildLogLine
from tests.helpers import missing_part


def add_job_lines(job, *timestamps):
    start = JobLogLine.objects.filter(job=job).count()
    return [
        line.pk
        for line in JobLogLine.objects.bulk_create(
            JobLogLine(job=job, seq=start + i, timestamp=ts, stream=1, text=f"line {start + i}")
            for i, ts in enumerate(timestamps)
        )
    ]


def add_build_lines(build, *timestamps):
    return [
        line.pk
        for line in BuildLogLine.objects.bulk_create(
            BuildLogLine(build=build, seq=i, timestamp=ts, text=f"step {i}")
            for i, ts in enumerate(timestamps)
        )
    ]


def test_it_removes_exactly_the_expired_lines(
    workspace, other_workspace, make_service, make_job, make_build
):
    now = timezone.now()

    def ago(days, minutes=0):
        return now - timedelta(days=days, minutes=minutes)

    other_workspace.log_retention_days = 14
    other_workspace.save()
    service = make_service()
    old = make_job(service, status="succeeded", created_at=ago(10), finished_at=ago(10))
    old_lines = add_job_lines(old, ago(10, 2), ago(10, 1))
    # Running for 9 days under a 7-day retention: its first lines expire while it runs.
    long = make_job(service, status="running", created_at=ago(9), started_at=ago(9))
    long_expired = add_job_lines(long, ago(9), ago(8), ago(7, 1))
    long_kept = add_job_lines(long, ago(6, 59 * 24), ago(1), now)
    recent = make_job(service, status="failed", created_at=ago(2), finished_at=ago(2))
    recent_kept = add_job_lines(recent, ago(2, 1))
    quiet = make_job(service, status="succeeded", created_at=ago(8), finished_at=ago(8))
    theirs = make_job(
        make_service(other_workspace, name="theirs"),
        status="succeeded",
        created_at=ago(10),
        finished_at=ago(10),
    )
    theirs_kept = add_job_lines(theirs, ago(10, 1))
    old_build = make_build(service)
    Build.objects.filter(pk=old_build.pk).update(created_at=ago(10), finished_at=ago(10))
    old_build_lines = add_build_lines(old_build, ago(10, 3), ago(10, 2))
    new_build = make_build(service)
    new_build_kept = add_build_lines(new_build, ago(0, 5))

    result = retention.purge_expired_logs(now=now, batch_size=2)

    assert result.job_lines == len(old_lines) + len(long_expired)
    assert result.build_lines == len(old_build_lines)
    assert sorted(JobLogLine.objects.values_list("pk", flat=True)) == sorted(
        long_kept + recent_kept + theirs_kept
    )
    assert sorted(BuildLogLine.objects.values_list("pk", flat=True)) == new_build_kept
    purged = dict(Job.objects.values_list("id", "logs_purged_at"))
    assert purged == {old.id: now, long.id: None, recent.id: None, quiet.id: now, theirs.id: None}
    assert Build.objects.get(pk=old_build.pk).logs_purged_at == now
    assert Build.objects.get(pk=new_build.pk).logs_purged_at is None
    assert (result.jobs, result.builds) == (2, 1)

    again = retention.purge_expired_logs(now=now + timedelta(minutes=10), batch_size=2)
    assert (again.job_lines, again.build_lines, again.jobs) == (0, 0, 0)


def test_a_shorter_retention_applies_to_lines_already_stored(workspace, make_service, make_job):
    now = timezone.now()
    job = make_job(make_service(), status="succeeded", created_at=now - timedelta(days=5))
    Job.objects.filter(pk=job.pk).update(finished_at=now - timedelta(days=5))
    add_job_lines(job, now - timedelta(days=5))
    assert retention.purge_expired_logs(now=now).job_lines == 0
    workspace.log_retention_days = 3
    workspace.save()
    assert retention.purge_expired_logs(now=now).job_lines == 1


def test_retention_fields_say_when_logs_expire_and_expired(workspace, make_service, make_job):
    now = timezone.now()
    running = make_job(make_service(), status="running", started_at=now)
    assert retention.retention_fields(running) == {}
    finished = make_job(make_service(), status="succeeded", finished_at=now)
    assert retention.retention_fields(finished) == {
        "logsExpireAt": (now + timedelta(days=7)).isoformat()
    }
    finished.logs_purged_at = now + timedelta(days=7, minutes=3)
    assert retention.retention_fields(finished) == {
        "logsExpiredAt": finished.logs_purged_at.isoformat()
    }


def test_the_job_page_says_the_logs_expired(client, owner, workspace, make_service, make_job):
    now = timezone.now()
    service = make_service()
    job = make_job(
        service, status="succeeded", created_at=now - timedelta(days=9), created_by=owner
    )
    Job.objects.filter(pk=job.pk).update(finished_at=now - timedelta(days=9))
    add_job_lines(job, now - timedelta(days=9))
    client.force_login(owner)
    url = f"/services/{service.id}/jobs/{job.id}/"
    assert "Logs are kept until" in client.get(url).content.decode()

    retention.purge_expired_logs()

    page = client.get(url).content.decode()
    assert "These logs expired on" in page
    assert "The logs of this job have expired." in page
    assert "line 0" not in page


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_purge_is_safe_while_a_job_writes(settings, make_service, make_job):
    """A job writing through the runner's real ingest path while the purge deletes its old
    lines in small batches: every new line stays, every expired one goes, nobody waits long."""
    if connection.vendor != "postgresql":
        missing_part("PostgreSQL is needed (DATABASE_URL=postgres://…)")
    now = timezone.now()
    job = make_job(
        make_service(), status="running", created_at=now - timedelta(days=9), started_at=now
    )
    old = now - timedelta(days=8)
    epoch_us = int(old.timestamp() * 1_000_000)
    insert_lines(job.id, [StoredLine(i, epoch_us + i, 1, f"old {i}") for i in range(3000)])
    Job.objects.filter(pk=job.pk).update(log_line_count=3000)

    written = []
    failures = []
    slowest = [0.0]

    def write():
        try:
            writer = LogWriter.for_job(job.id)
            for _ in range(40):
                for _ in range(50):
                    writer.add(time.time_ns(), 1, b"new line\n")
                started = time.monotonic()
                written.extend(line.seq for line in writer.flush())
                slowest[0] = max(slowest[0], time.monotonic() - started)
                time.sleep(0.005)
        except Exception as exc:
            failures.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=write)
    thread.start()
    purged = 0
    while thread.is_alive() or not purged:
        purged += retention.purge_expired_logs(batch_size=100).job_lines
    thread.join()

    assert failures == []
    assert purged == 3000
    remaining = list(
        JobLogLine.objects.filter(job=job).order_by("seq").values_list("seq", flat=True)
    )
    assert remaining == written == list(range(3000, 3000 + 40 * 50))
    assert Job.objects.get(pk=job.pk).logs_purged_at is None  # still running
    assert slowest[0] < 2.0, f"a batch store waited {slowest[0]:.2f}s"


def test_the_beat_task_purges(workspace, make_service, make_job):
    from config.celery import app
    from jobs.tasks import purge_expired_logs

    now = timezone.now()
    job = make_job(make_service(), status="succeeded", created_at=now - timedelta(days=8))
    Job.objects.filter(pk=job.pk).update(finished_at=now - timedelta(days=8))
    add_job_lines(job, now - timedelta(days=8))
    assert app.conf.beat_schedule["purge-logs"]["task"] == purge_expired_logs.name

    purge_expired_logs.apply()

    assert not JobLogLine.objects.exists()
    assert Job.objects.get(pk=job.pk).logs_purged_at is not None


def test_purging_a_long_log_reads_its_expired_lines_and_few_more(make_service, make_job):
    """A job running across the cutoff with a big log: the purge reads the expired lines and,
    by the job's marks, about a thousand of the ones kept, not all of them (job lines have no
    index on their time)."""
    from jobs.logs import marks
    from tests.jobs.test_log_marks import lines_read

    now = timezone.now()
    job = make_job(
        make_service(), status="running", created_at=now - timedelta(days=9), started_at=now
    )
    writer = LogWriter.for_job(job.id)
    for i in range(20_000):
        at = now - timedelta(days=8 if i < 8_000 else 1) + timedelta(microseconds=i)
        writer.add(int(at.timestamp() * 10**9), 1, f"line {i}\n".encode())
        if i % 5_000 == 4_999:
            writer.flush()
    writer.flush()
    with transaction.atomic():
        before = lines_read()
        assert retention.purge_expired_logs(batch_size=3_000).job_lines == 8_000
        read = lines_read() - before
    # Each expired line read at most three times (the planner may read the whole range for the
    # first batch's search, each batch finds its lines and deletes them by a range of the key)
    # and at most a stretch between two marks of the kept ones. Without marks the searches read
    # on through the 12,000 kept lines (59,000 read); a delete by a list of (job, seq) pairs
    # was planned as a scan of the whole table (71,000).
    assert read <= 3 * 8_000 + marks.MARK_EVERY, read
    seqs = JobLogLine.objects.filter(job=job).order_by("seq").values_list("seq", flat=True)
    assert list(seqs) == list(range(8_000, 20_000))
    # The expired lines' marks went with them; the kept lines' stay.
    assert min(JobLogMark.objects.filter(job=job).values_list("seq", flat=True)) == 8_000

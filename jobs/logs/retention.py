"""Log retention: purge job and build log lines older than their workspace's retention period.

Lines expire one by one (a line's timestamp plus the retention period), as in Render's log
explorer whose range is bounded by the retention period: a job that runs longer than the period
loses its oldest lines first, and a finished job's last lines expire ``retention`` after it
finished.

``logs_purged_at`` is set on a job or build once all of its logs have expired (it finished
more than the retention period ago and its lines are gone); pages and the API say so.

Deletion runs in short transactions of at most ``LOG_PURGE_BATCH`` lines, found through the
(job, timestamp) index, so it never holds long locks and is safe while jobs write: a line being
written is always newer than the cutoff, and the only row locks taken are those of expired lines
(and, at the end, of the finished jobs being marked).

Only jobs and builds created before the cutoff and not yet marked can hold expired lines, so a
steady-state run touches only the few crossing the cutoff since the last run (and the rare ones
running longer than the retention period), however many million old jobs the table holds.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs.logs import index, marks
from jobs.logs.parse import EPOCH
from jobs.models import Job, JobLogLine
from services.models import Build, BuildLogLine, Workspace

log = logging.getLogger(__name__)

ONE_US = timedelta(microseconds=1)
CHUNK = 500  # jobs (or builds) read at a time (their lines are then purged one owner at a time)


@dataclass
class PurgeResult:
    job_lines: int = 0
    build_lines: int = 0
    jobs: int = 0  # jobs whose logs expired completely in this run
    builds: int = 0


def purge_expired_logs(
    *, now: datetime | None = None, batch_size: int | None = None
) -> PurgeResult:
    """Delete every job and build log line older than its workspace's retention period."""
    now = now or timezone.now()
    batch_size = batch_size or settings.LOG_PURGE_BATCH
    result = PurgeResult()
    tiers = Workspace.objects.order_by().values_list("log_retention_days", flat=True).distinct()
    for days in sorted(set(tiers)):
        retention = timedelta(days=days)
        cutoff = now - retention
        jobs = Job.objects.filter(workspace__log_retention_days=days)
        lines, expired = _purge(jobs, JobLogLine, "job_id", cutoff, now, batch_size)
        result.job_lines += lines
        result.jobs += expired
        builds = Build.objects.filter(service__workspace__log_retention_days=days)
        lines, expired = _purge(builds, BuildLogLine, "build_id", cutoff, now, batch_size)
        result.build_lines += lines
        result.builds += expired
    if result.job_lines or result.build_lines or result.jobs or result.builds:
        log.info(
            "purged %d job and %d build log lines; logs of %d jobs and %d builds expired",
            result.job_lines,
            result.build_lines,
            result.jobs,
            result.builds,
        )
    return result


def _purge(
    owners: QuerySet[Job] | QuerySet[Build],
    line_model: type[JobLogLine] | type[BuildLogLine],
    owner_field: str,
    cutoff: datetime,
    now: datetime,
    batch_size: int,
) -> tuple[int, int]:
    """Purge the lines of ``owners`` older than ``cutoff``; returns (lines, owners expired)."""
    deleted = expired = 0
    last_id = ""
    # Only these may hold lines older than the cutoff.
    candidates = owners.filter(created_at__lt=cutoff, logs_purged_at__isnull=True).order_by("id")
    while True:
        chunk = list(candidates.filter(id__gt=last_id).values_list("id", flat=True)[:CHUNK])
        if not chunk:
            break
        last_id = chunk[-1]
        purged_here = 0
        spans = marks.ranges(chunk, EPOCH, cutoff - ONE_US) if line_model is JobLogLine else {}
        for owner_id in chunk:
            # One owner's lines in seq order, which is their time order: the expired ones come
            # first, read through the primary key (job lines have no index on their time), and
            # a job's marks say where the ones kept begin.
            expired_lines = line_model.objects.filter(
                **{owner_field: owner_id}, timestamp__lt=cutoff
            ).order_by("seq")
            stop = spans.get(owner_id, (0, None))[1]
            if stop is not None:
                expired_lines = expired_lines.filter(seq__lt=stop)
            after = -1
            while True:
                with transaction.atomic():
                    batch = expired_lines.filter(seq__gt=after)
                    seqs = list(batch.values_list("seq", flat=True)[:batch_size])
                    if seqs:
                        # A range of the key: a list of thousands of (owner, seq) pairs was
                        # planned as a scan of the whole table.
                        batch.filter(seq__lte=seqs[-1]).delete()
                        after = seqs[-1]
                deleted += len(seqs)
                purged_here += len(seqs)
                if len(seqs) < batch_size:
                    break
        if purged_here and line_model is JobLogLine:
            index.forget(chunk)  # search chunks hold the purged lines' text too
            marks.forget(chunk, cutoff)
        # Finished before the cutoff: every line has expired (a job that printed nothing is
        # marked too: its logs, such as they were, expired).
        expired += owners.model.objects.filter(
            id__in=chunk, finished_at__lt=cutoff, logs_purged_at__isnull=True
        ).update(logs_purged_at=now)
    return deleted, expired


# What pages and the API say about a job's (or build's) logs.


def logs_expire_at(obj: Job | Build, retention_days: int | None = None) -> datetime | None:
    """When the last lines of a finished job or build expire (None while it runs)."""
    if obj.finished_at is None:
        return None
    if retention_days is None:
        retention_days = _workspace_of(obj).log_retention_days
    return obj.finished_at + timedelta(days=retention_days)


def retention_fields(obj: Job | Build, retention_days: int | None = None) -> dict:
    """API extension fields: ``logsExpireAt`` while a finished job's logs are kept,
    ``logsExpiredAt`` once they have been purged (neither while it runs)."""
    if obj.logs_purged_at is not None:
        return {"logsExpiredAt": obj.logs_purged_at.isoformat()}
    expire_at = logs_expire_at(obj, retention_days)
    return {"logsExpireAt": expire_at.isoformat()} if expire_at is not None else {}


def _workspace_of(obj: Job | Build) -> Workspace:
    if isinstance(obj, Build):
        return obj.service.workspace
    return obj.workspace

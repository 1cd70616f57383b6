"""Reading a job's log back: Render's ``GET /v1/logs`` pages, and a whole log for downloads."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction

from jobs.models import Job, JobLogLine, LogStream

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
ONE_US = timedelta(microseconds=1)


@dataclass
class LogQuery:
    jobs: list[Job]
    start: datetime
    end: datetime
    direction: str = "backward"
    text: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT


COLUMNS = ("job_id", "seq", "timestamp", "stream", "text")


def query_logs(q: LogQuery) -> dict:
    """One page of Render's time-window pagination over the jobs' log lines.

    The window is ``[start, end]``. Backward pages go newest first and the next page's window
    ends just before the oldest line returned; forward pages go oldest first and the next window
    starts just after the newest line. Stored timestamps are unique per job, and a page never
    ends between two lines of equal timestamp, so paging returns every line exactly once.
    """
    rows = JobLogLine.objects.filter(
        job_id__in=[job.id for job in q.jobs], timestamp__gte=q.start, timestamp__lte=q.end
    )
    for text in q.text:
        rows = rows.filter(text__contains=text)
    streams = {LogStream.STDOUT if v == "info" else LogStream.STDERR for v in q.levels}
    if q.levels:
        rows = rows.filter(stream__in=streams) if streams else rows.none()
    forward = q.direction == "forward"
    # One job: its (job, timestamp) index gives the order (timestamps are unique per job).
    if len(q.jobs) == 1:
        order: tuple[str, ...] = ("timestamp",) if forward else ("-timestamp",)
    else:
        order = ("timestamp", "job_id") if forward else ("-timestamp", "-job_id")
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A job's lines arrive faster than autovacuum's statistics: with stale estimates the
            # planner prefers a bitmap scan that sorts every line in the window for each page.
            # The (job, timestamp) index already yields them in order; make it take that.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_bitmapscan = off")
        page = list(rows.order_by(*order).values_list(*COLUMNS)[: q.limit + 1])
    has_more = len(page) > q.limit
    if has_more:
        boundary = page[q.limit - 1][2]
        page = page[: q.limit]
        if page and len(q.jobs) > 1:
            # Lines of different jobs may share a timestamp: never split them across pages.
            seen = {(line[0], line[1]) for line in page}
            page += [
                line
                for line in rows.filter(timestamp=boundary).order_by(*order).values_list(*COLUMNS)
                if (line[0], line[1]) not in seen
            ]
    if forward:
        next_start = page[-1][2] + ONE_US if page else q.start
        next_end = q.end
    else:
        next_start = q.start
        next_end = page[-1][2] - ONE_US if page else q.end
    return {
        "hasMore": has_more,
        "nextStartTime": next_start.isoformat(),
        "nextEndTime": next_end.isoformat(),
        "logs": [
            {
                "id": f"{job_id}-{seq}",
                "message": text,
                "timestamp": timestamp.isoformat(),
                "labels": [
                    {"name": "resource", "value": job_id},
                    {"name": "instance", "value": job_id},
                    {"name": "level", "value": "error" if stream == LogStream.STDERR else "info"},
                    {"name": "type", "value": "app"},
                ],
            }
            for job_id, seq, timestamp, stream, text in page
        ],
    }


def line_batches(job_pk: str, batch: int = 5000) -> Iterator[list[tuple]]:
    """Every stored line of a job in order, as ``(seq, timestamp, stream, text)`` rows, in
    keyset batches of ``batch`` (constant memory, for downloads)."""
    after = -1
    while True:
        rows = list(
            JobLogLine.objects.filter(job_id=job_pk, seq__gt=after)
            .order_by("seq")
            .values_list("seq", "timestamp", "stream", "text")[:batch]
        )
        if not rows:
            return
        yield rows
        after = rows[-1][0]

"""A time window of a job's log as a range of its seqs, without an index on the lines' times.

An index on (job, timestamp) over every line was 40% of log ingest's database work (a COPY of
a million lines took 4.0 s with it and 2.4 s with the primary key alone). A job's times
increase strictly with its seqs (``jobs.logs.store`` nudges ties by a microsecond), so the lines
of a window ``[start, end]`` are a range of seqs, and a few known ``(seq, timestamp)`` pairs per
job, ``JobLogMark`` rows, bound that range: every line before the last mark at or before
``start`` is older than the window, and every line from the first mark after ``end`` on is
newer. The lines are then read through their primary key (job, seq) with the times checked
row by row: at most the lines between two marks are read in vain at each end.

The log writer marks a line (one stored on its own, or the first of a block of COPY rows) once
``MARK_EVERY`` seqs have passed since its last mark, in the transaction that stores the lines.
Marks are only ever a hint: lines stored without them (a log written before marks existed, a
test's rows) read as one wide range, which is slower and still exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max, Min, Q

from jobs.logs.parse import EPOCH, StoredLine
from jobs.models import JobLogMark

# About one mark per this many lines: 1,000 rows for a 1,000,000-line log, and at most about this
# many lines (or one flush's block, whichever is bigger) read past each end of a window.
MARK_EVERY = 1000


def choose(loose: Sequence[StoredLine], blocks: Iterable, after: int) -> tuple[list, int]:
    """The ``(seq, microseconds)`` to mark among a batch's lines: its loose lines and the first
    line of each of its blocks (``RowBlock``), each at least ``MARK_EVERY`` seqs past the mark
    before (``after`` is the first seq the next mark may take). Returns them and the new
    ``after``."""
    starts = [(line.seq, line.timestamp_us) for line in loose]
    starts += [(block.first_seq, block.first_us) for block in blocks]
    starts.sort()
    chosen = []
    for seq, us in starts:
        if seq >= after:
            chosen.append((seq, us))
            after = seq + MARK_EVERY
    return chosen, after


def add(job_id: str, marks: list[tuple[int, int]]) -> None:
    """Store ``marks`` of ``job_id`` (inside the transaction storing their lines)."""
    if marks:
        JobLogMark.objects.bulk_create(
            JobLogMark(job_id=job_id, seq=seq, timestamp=EPOCH + timedelta(microseconds=us))
            for seq, us in marks
        )


Range = tuple[int, int | None]  # first seq, and the seq before which it ends (None: no end)


def ranges(job_ids: Iterable[Any], start: datetime, end: datetime) -> dict[str, Range]:
    """For each of ``job_ids`` (a list, or a subquery of job ids) that has marks, the seqs
    ``[first, stop)`` that hold its lines of ``[start, end]``; a job with no marks is left out
    (its range is all of its lines). One query over the marks."""
    found = (
        JobLogMark.objects.filter(job_id__in=job_ids)
        .values("job_id")
        .order_by("job_id")
        .annotate(
            first=Max("seq", filter=Q(timestamp__lte=start)),
            stop=Min("seq", filter=Q(timestamp__gt=end)),
        )
        .values_list("job_id", "first", "stop")
    )
    return {job_id: (first or 0, stop) for job_id, first, stop in found}


def lines_filter(job_id: str, seqs: Range | None) -> Q:
    """The lines of ``job_id`` in ``seqs`` (``ranges``; None: all of them)."""
    if seqs is None:
        return Q(job_id=job_id)
    first, stop = seqs
    q = Q(job_id=job_id, seq__gte=first)
    return q if stop is None else q & Q(seq__lt=stop)


def forget(job_ids: Iterable[str], before: datetime) -> int:
    """Drop the marks of ``job_ids`` older than ``before`` (their lines were purged)."""
    deleted, _ = JobLogMark.objects.filter(job_id__in=job_ids, timestamp__lt=before).delete()
    return deleted

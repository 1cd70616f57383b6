"""A log's time windows read through marks (``jobs.logs.marks``) instead of an index on every
line's (job, timestamp): exactly the lines of the window, with or without marks, and few rows
read on PostgreSQL."""

import itertools
import random
from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction

from jobs.launch import create_job
from jobs.logs import marks
from jobs.logs.parse import EPOCH, StoredLine
from jobs.logs.read import LogQuery, query_logs
from jobs.logs.store import LogWriter, RowBlock, insert_lines
from jobs.models import Job, JobLogLine, JobLogMark, LogStream

START_US = 1_780_000_000 * 10**6  # some microsecond time


@pytest.fixture
def job(service, make_build):
    make_build(service)
    return create_job(service, "echo")


def write(job, count, *, every_us=10, offset_us=0, flush_every=700):
    """``count`` lines through the log writer (which marks them), flushed every
    ``flush_every`` lines: line i at START_US + offset_us + i * every_us."""
    writer = LogWriter.for_job(job.id)
    for i in range(count):
        stream = LogStream.STDERR if i % 5 == 0 else LogStream.STDOUT
        writer.add((START_US + offset_us + i * every_us) * 1000, stream, f"{job.id} {i}\n".encode())
        if (i + 1) % flush_every == 0:
            writer.flush()
    writer.flush()


def unmarked(job, count, *, every_us=10, offset_us=0):
    """``count`` lines stored without the writer: no marks."""
    lines = [
        StoredLine(i, START_US + offset_us + i * every_us, LogStream.STDOUT, f"{job.id} {i}")
        for i in range(count)
    ]
    with transaction.atomic():
        insert_lines(job.id, lines)
    Job.objects.filter(pk=job.pk).update(log_line_count=count)


def at(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=START_US + us)


def every_page(q: LogQuery) -> list[str]:
    got = []
    while True:
        page = query_logs(q)
        got += [entry["id"] for entry in page["logs"]]
        if not page["hasMore"]:
            return got
        if q.direction == "forward":
            q.start = datetime.fromisoformat(page["nextStartTime"])
        else:
            q.end = datetime.fromisoformat(page["nextEndTime"])


def scan(jobs, start, end, direction, levels=()) -> list[str]:
    """What the window holds, read with no marks and no index: the expected answer."""
    rows = JobLogLine.objects.filter(
        job_id__in=[job.id for job in jobs], timestamp__gte=start, timestamp__lte=end
    )
    if levels == ["error"]:
        rows = rows.filter(stream=LogStream.STDERR)
    found = sorted(rows.values_list("timestamp", "job_id", "seq"))
    ids = [f"{job_id}-{seq}" for _, job_id, seq in found]
    return ids if direction == "forward" else ids[::-1]


def test_the_writer_marks_about_one_line_in_every_thousand(job):
    write(job, 5_500, flush_every=700)
    found = list(JobLogMark.objects.filter(job=job).order_by("seq").values_list("seq", "timestamp"))
    seqs = [seq for seq, _ in found]
    # Lines stored one by one: each thousandth.
    assert seqs == [0, 1000, 2000, 3000, 4000, 5000]
    assert all(b - a >= marks.MARK_EVERY for a, b in itertools.pairwise(seqs))
    lines = dict(JobLogLine.objects.filter(job=job, seq__in=seqs).values_list("seq", "timestamp"))
    assert found == [(seq, lines[seq]) for seq in seqs]  # each mark is its line's own time


def test_a_new_writer_goes_on_marking_after_a_restart(job):
    write(job, 1_200, flush_every=600)  # marks 0 and 1,000
    write_more = LogWriter.for_job(job.id)  # a restarted worker's writer
    write_more.add((START_US + 50_000) * 1000, LogStream.STDOUT, b"after the restart\n")
    write_more.flush()
    marked = JobLogMark.objects.filter(job=job).order_by("seq").values_list("seq", flat=True)
    assert list(marked) == [0, 1000, 1200]


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_windows_read_through_marks_hold_exactly_their_lines(service, job, direction):
    # Three jobs of one service whose lines interleave in time: two marked (one of them with
    # some marks lost), one stored without marks.
    second, plain = create_job(service, "echo"), create_job(service, "echo")
    write(job, 4_000, every_us=10)
    write(second, 3_000, every_us=13, offset_us=5, flush_every=450)
    unmarked(plain, 2_500, every_us=17, offset_us=3)
    JobLogMark.objects.filter(job=second, seq__in=[900, 1800]).delete()
    assert JobLogMark.objects.filter(job=job).count() > 2
    rng = random.Random(20)
    windows = [(-100, 50_000), (0, 0), (10, 10), (39_990, 39_990), (60_000, 70_000)]
    windows += [tuple(sorted(rng.sample(range(-50, 42_000), 2))) for _ in range(6)]
    for low, high in windows:
        start, end = at(low), at(high)
        for jobs, query in [
            ([job], {"jobs": [job]}),
            ([second], {"jobs": [second]}),
            ([plain], {"jobs": [plain]}),
            ([job, second, plain], {"jobs": [], "services": [service]}),
            ([job, plain], {"jobs": [job, plain]}),
        ]:
            q = LogQuery(start=start, end=end, direction=direction, limit=97, **query)
            assert every_page(q) == scan(jobs, start, end, direction), (low, high, query)
        q = LogQuery(jobs=[job], start=start, end=end, direction=direction, levels=["error"])
        assert every_page(q) == scan([job], start, end, direction, ["error"]), (low, high)


def test_marks_are_forgotten_with_their_job(job):
    write(job, 2_100)
    assert JobLogMark.objects.filter(job=job).exists()
    Job.objects.filter(pk=job.pk).delete()
    assert not JobLogMark.objects.exists()


def test_blocks_are_marked_by_their_first_line():
    def block(first_seq, count):
        return RowBlock(first_seq=first_seq, count=count, first_us=START_US + first_seq, rows=b"")

    loose = [StoredLine(seq, START_US + seq, 1, "x") for seq in (2_950, 2_951)]
    blocks = [block(0, 700), block(700, 700), block(1_400, 700), block(2_100, 850)]
    chosen, after = marks.choose(loose, blocks, after=0)
    assert chosen == [(0, START_US), (1_400, START_US + 1_400), (2_950, START_US + 2_950)]
    assert after == 2_950 + marks.MARK_EVERY
    assert marks.choose([], [block(3_000, 10)], after)[0] == []


# On PostgreSQL (the suite's database): no index on the lines' times, and a window reads few
# lines.


def lines_read() -> int:
    """Rows of the log table read so far in this transaction (by index or by scan)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = %s",
            [JobLogLine._meta.db_table],
        )
        row = cursor.fetchone()
    return row[0] if row else 0


def test_the_log_table_has_its_primary_key_as_its_only_index(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s",
            [JobLogLine._meta.db_table],
        )
        names = [name for (name,) in cursor.fetchall()]
    assert len(names) == 1, names
    assert names[0].endswith("_pkey"), names


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_a_window_in_a_big_log_reads_only_the_lines_near_it(service, job, direction):
    other = create_job(service, "echo")
    write(job, 20_000, every_us=10, flush_every=5_000)
    write(other, 20_000, every_us=10, offset_us=3, flush_every=5_000)
    # A window of 100 lines a quarter of the way into both logs.
    start, end = at(50_000), at(50_990)
    bound = 2 * (marks.MARK_EVERY + 5_000) + 100
    with transaction.atomic():
        before = lines_read()
        page = query_logs(LogQuery(jobs=[job], start=start, end=end, direction=direction))
        assert len(page["logs"]) == 20
        single = lines_read() - before
        before = lines_read()
        q = LogQuery(jobs=[], services=[service], start=start, end=end, direction=direction)
        page = query_logs(q)
        assert len(page["logs"]) == 20
        several = lines_read() - before
    # Without marks, the scan walks from one end of each log to the window: 5,000 or 15,000
    # lines each.
    assert single <= bound, single
    assert several <= 2 * bound, several

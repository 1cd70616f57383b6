"""Search chunks of big logs (``jobs.logs.index``) on the real PostgreSQL: chunks are written
off the ingest path, a search narrowed by them finds exactly what a scan finds (every syntax of
``GET /v1/logs`` ``text``, both directions, bounds and limits, lines not chunked yet), purged
lines take their chunks with them, and one job's chunks never answer for another's."""

import random

import pytest
from django.db import connection
from django.test import override_settings

from jobs.logs import index, search
from jobs.logs.read import LogQuery, query_logs, search_job
from jobs.logs.retention import purge_expired_logs
from jobs.models import Job, JobLogChunk, JobLogLine, JobStatus

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("small_chunks"),
]

CHUNK = 10


@pytest.fixture
def small_chunks():
    with override_settings(LOG_INDEX_CHUNK_LINES=CHUNK, LOG_INDEX_MIN_LINES=1):
        yield


@pytest.fixture(autouse=True)
def postgresql_only():
    assert connection.vendor == "postgresql", "the chunk index is PostgreSQL's (pg_trgm)"


@pytest.fixture(autouse=True)
def small_window(monkeypatch):
    # The direct read before the index is asked: small, so these small logs use the chunks.
    monkeypatch.setattr(index, "SCAN_WINDOW", 15)


def log(n: int) -> list[str]:
    rng = random.Random(n)
    words = ["alpha", "Beta", "gamma", "delta-9", "ERROR", "warn", "x<y>", "100%", "a_b"]
    return [f"step {i}: {' '.join(rng.choice(words) for _ in range(3))}" for i in range(n)]


def scan(job: Job, value: str) -> list[int]:
    """The reference: every line's text matched in Python as RE2 does."""
    pattern = search.text_pattern(value)
    return [
        seq
        for seq, text in JobLogLine.objects.filter(job=job)
        .order_by("seq")
        .values_list("seq", "text")
        if pattern.search(text)
    ]


def narrowed(job: Job, value: str, **kwargs) -> list[int] | None:
    terms = search.parse("text", [value])
    rows = JobLogLine.objects.filter(job_id=job.pk)
    for lookup in search.text_lookups(terms):
        rows = rows.filter(**lookup)
    job.refresh_from_db()
    from django.db import transaction

    with transaction.atomic():
        return index.matching_seqs(rows, job, terms, **kwargs)


def test_chunks_are_whole_while_a_job_runs_and_complete_once_it_ends(make_job):
    job = make_job(status=JobStatus.RUNNING, lines=log(35))  # seqs 1..35
    assert index.index_job(job.pk) == 30
    job.refresh_from_db()
    assert job.log_indexed_through == 30
    chunks = list(JobLogChunk.objects.filter(job=job).order_by("first_seq"))
    assert [(c.first_seq, c.last_seq) for c in chunks] == [(1, 10), (11, 20), (21, 30)]
    assert chunks[0].text == "\n".join(log(35)[:10])
    assert index.index_job(job.pk) == 0  # nothing whole to add
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    index.index_job(job.pk)
    job.refresh_from_db()
    assert job.log_indexed_through == 35
    assert JobLogChunk.objects.filter(job=job).count() == 4


def test_the_periodic_pass_picks_the_jobs_with_new_lines(make_job):
    running = make_job(status=JobStatus.RUNNING, lines=log(25))
    small = make_job(status=JobStatus.RUNNING, lines=log(5))  # not a whole chunk yet
    done = make_job(lines=log(12))
    assert set(index.due_jobs().values_list("pk", flat=True)) == {running.pk, done.pk}
    assert index.index_due() == 20 + 12  # two whole chunks; one whole and one partial
    assert set(index.due_jobs().values_list("pk", flat=True)) == set()
    with override_settings(LOG_INDEX_MIN_LINES=20):
        assert small.pk not in index.due_jobs().values_list("pk", flat=True)


@pytest.mark.parametrize(
    "value",
    [
        "ERROR",
        "error",  # as written: no match in case
        "delta-9 warn",
        "x<y>",
        "100%",  # LIKE's wildcards are literal
        "a_b",
        "step 1*ERROR",  # a wildcard
        "/^step 4\\d:/",  # anchored: the start of a line, not of a chunk
        "/^step 45:/",  # a line in the middle of its chunk
        "/^step 7\\d: [^\\n]*ERROR$/",
        "/gamma$/",
        "/(?i)beta ERROR/",
        "/\\bwarn\\b/",
        "/\\Astep 7/",  # an anchor on the whole text: scanned, not narrowed
        "nothing like this",
    ],
)
def test_a_narrowed_search_finds_exactly_what_a_scan_finds(make_job, value):
    job = make_job(status=JobStatus.RUNNING, lines=log(95))
    index.index_job(job.pk)  # seqs 1..90 in chunks, 91..95 not yet
    job.refresh_from_db()
    expected = scan(job, value)
    assert narrowed(job, value, forward=True, limit=1000) in (expected, None)
    assert search_job(job, value, after=None, limit=1000) == expected
    assert search_job(job, value, after=40, limit=3) == [s for s in expected if s > 40][:3]
    backward = narrowed(job, value, forward=False, limit=4, first=20, last=70)
    if backward is not None:
        assert backward == [s for s in reversed(expected) if 20 <= s <= 70][:4]
    if value.startswith("/\\A"):
        assert narrowed(job, value, forward=True, limit=10) is None


def test_the_chunks_decide_where_a_search_looks(make_job):
    """Lines in a chunk the index says cannot match are not read: the narrowing is real."""
    job = make_job(lines=[f"line {i}" for i in range(60)] + ["needle"] * 3)
    index.index_job(job.pk)
    job.refresh_from_db()
    assert search_job(job, "needle", after=None, limit=10) == [61, 62, 63]
    JobLogChunk.objects.filter(job=job, first_seq=61).update(text="nothing here")
    assert search_job(job, "needle", after=None, limit=10) == []
    with override_settings(LOG_INDEX_MIN_LINES=0):  # off: a scan
        assert search_job(job, "needle", after=None, limit=10) == [61, 62, 63]


def test_one_jobs_chunks_never_answer_for_anothers(make_job):
    mine = make_job(lines=["plain"] * 40)
    theirs = make_job(lines=["secret-token"] * 40)
    index.index_due()
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.log_indexed_through == theirs.log_indexed_through == 40
    assert search_job(mine, "secret-token", after=None, limit=10) == []
    assert search_job(theirs, "secret-token", after=None, limit=2) == [1, 2]


def test_purged_lines_take_their_chunks_with_them(make_job):
    from datetime import timedelta

    from django.utils import timezone

    old = timezone.now() - timedelta(days=400)
    job = make_job(lines=log(30), created_at=old, finished_at=old)
    JobLogLine.objects.filter(job=job).update(timestamp=old)
    index.index_job(job.pk)
    assert JobLogChunk.objects.filter(job=job).exists()
    purge_expired_logs()
    assert not JobLogChunk.objects.filter(job=job).exists()
    job.refresh_from_db()
    assert job.log_indexed_through is None


def test_the_logs_api_pages_a_chunked_log_as_a_scanned_one(make_job):
    job = make_job(status=JobStatus.RUNNING, lines=log(95))
    lines = list(JobLogLine.objects.filter(job=job).order_by("seq"))
    start, end = lines[0].timestamp, lines[-1].timestamp

    def pages(direction: str) -> list[list[str]]:
        out, window = [], (start, end)
        while True:
            q = LogQuery(jobs=[job], start=window[0], end=window[1], direction=direction)
            q.text, q.limit = ["/ERROR|warn/"], 7
            job.refresh_from_db()
            q.jobs = [job]
            page = query_logs(q)
            out.append([entry["id"] for entry in page["logs"]])
            if not page["hasMore"]:
                return out
            from datetime import datetime

            window = (
                datetime.fromisoformat(page["nextStartTime"]),
                datetime.fromisoformat(page["nextEndTime"]),
            )

    scanned = pages("backward"), pages("forward")
    index.index_job(job.pk)
    assert (pages("backward"), pages("forward")) == scanned
    assert len(scanned[0]) > 2  # several pages


def test_a_gap_in_the_seqs_stops_chunking_and_the_search_still_finds_everything(make_job):
    from tests.helpers import add_lines

    job = make_job(lines=[f"a {i}" for i in range(25)])  # seqs 1..25
    add_lines(job, [f"b {i} needle" for i in range(30)], start=40)  # seqs 40..69
    index.index_job(job.pk)
    job.refresh_from_db()
    # Chunks 1-10 and 11-20; the next would hold 21-25 and 40-44: none from there on.
    assert job.log_indexed_through == 20
    assert search_job(job, "needle", after=None, limit=100) == list(range(40, 70))


def test_the_beat_runs_the_pass(make_job):
    from config.celery import app
    from jobs.tasks import index_logs

    assert app.conf.beat_schedule["index-logs"]["task"] == index_logs.name
    job = make_job(lines=log(12))
    index_logs.apply()
    job.refresh_from_db()
    assert job.log_indexed_through == 12

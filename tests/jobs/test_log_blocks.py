"""Usual json-file lines stored as COPY rows made in bulk (``JsonBlock``, ``LogWriter.add_block``)
give exactly what the per-line way stores: texts, seq, times (ties nudged), streams, cursor,
counts, on the real database."""

import json
import random

import pytest

from jobs.launch import create_job
from jobs.logs.parse import JsonBlock, JsonFileParser
from jobs.logs.store import LogWriter, StoredBatch
from jobs.models import Job, JobLogLine

SECOND = 1_780_000_000


def json_line(ts_ns: int, stream: str, text: str) -> bytes:
    seconds, nanos = divmod(ts_ns, 10**9)
    # RFC 3339 with nanoseconds, trailing zeros cut, as Docker writes it.
    fraction = f"{nanos:09d}".rstrip("0")
    stamp = f"{_iso(seconds)}{'.' if fraction else ''}{fraction}Z"
    return (
        json.dumps(
            {"log": text, "stream": stream, "time": stamp},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        .replace("<", "\\u003c")
        .encode()
        + b"\n"
    )


def _iso(seconds: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def chatty_log(lines: int, seed: int) -> bytes:
    """Mostly usual lines, with ties to the microsecond and nanosecond, both streams, a little
    disorder between them, and now and then a line of another form (escapes, a piece of a long
    line, non-ASCII, a tag)."""
    rnd = random.Random(seed)
    ts = SECOND * 10**9
    out = []
    for i in range(lines):
        ts += rnd.choice([0, 1, 200, 999, 1000, 3000, 1_000_000])
        stream = "stderr" if rnd.random() < 0.1 else "stdout"
        at = ts - rnd.choice([0, 0, 0, 2000]) if stream == "stderr" else ts
        roll = rnd.random()
        if roll < 0.01:
            text = f'quote " and tab \t in {i}\n'
        elif roll < 0.02:
            text = f"piece of a long line {i} "  # no newline
        elif roll < 0.03:
            text = f"héllo wörld {i}\n"
        elif roll < 0.04:
            text = f"<b>{i}</b>\n"
        else:
            text = f"line {i} " + "x" * rnd.randrange(0, 40) + "\n"
        out.append(json_line(at, stream, text))
    return b"".join(out)


@pytest.fixture
def two_jobs(job_service):
    return create_job(job_service, "true"), create_job(job_service, "true")


def rows(job):
    return list(
        JobLogLine.objects.filter(job=job)
        .order_by("seq")
        .values_list("seq", "timestamp", "stream", "text")
    )


def ingest(job, data, *, bulk, block_size=4096, flush_every=3):
    writer = LogWriter.for_job(job.id)
    parser = JsonFileParser()
    stored = []
    add_block = writer.add_block
    writer.bulk_lines = 0  # type: ignore[attr-defined]

    def counting(block):
        done = add_block(block)
        writer.bulk_lines += len(block.lines) if done else 0  # type: ignore[attr-defined]
        return done

    writer.add_block = counting  # type: ignore[method-assign]
    for n, start in enumerate(range(0, len(data), block_size)):
        chunk = data[start : start + block_size]
        items = parser.feed_blocks(chunk) if bulk else [parser.feed(chunk)]
        for item in items:
            writer.add_batch(item)
        if n % flush_every == 0:
            stored.extend(writer.flush())
    stored.extend(writer.finish())
    return writer, stored


def cursor(job):
    job = Job.objects.get(pk=job.pk)
    return (
        job.log_cursor_ns,
        job.log_cursor_count,
        job.log_line_count,
        job.log_bytes,
        job.log_dropped_bytes,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_blocks_store_what_the_per_line_way_stores(two_jobs, seed):
    bulk_job, line_job = two_jobs
    data = chatty_log(3000, seed)
    writer, bulk_lines = ingest(bulk_job, data, bulk=True)
    assert writer.bulk_lines > 1000  # most lines went in blocks
    _, line_lines = ingest(line_job, data, bulk=False)
    assert rows(bulk_job) == rows(line_job)
    assert len(rows(bulk_job)) == 3000
    assert cursor(bulk_job) == cursor(line_job)
    # What the hook and flush() gave, made from the rows, is the same too.
    assert [(x.seq, x.timestamp_us, x.stream, x.text) for x in bulk_lines] == [
        (x.seq, x.timestamp_us, x.stream, x.text) for x in line_lines
    ]


def test_a_clean_log_is_read_as_blocks(two_jobs):
    # Times with 9 digits, fewer (trailing zeros cut) and none.
    data = b"".join(json_line(SECOND * 10**9 + i * 10, "stdout", f"{i}\n") for i in range(2000))
    assert b':40Z"' in data
    assert b'.00001Z"' in data
    items = JsonFileParser().feed_blocks(data)
    assert len(items) == 1
    assert isinstance(items[0], JsonBlock)
    # Cut anywhere, the blocks hold the same lines.
    parser = JsonFileParser()
    parts = [parser.feed_blocks(data[i : i + 777]) for i in range(0, len(data), 777)]
    got = [m for part in parts for item in part for m in item.messages()]
    assert got == JsonFileParser().feed(data)


def test_a_resumed_writer_skips_what_was_stored_and_nudges_ties(two_jobs):
    bulk_job, line_job = two_jobs
    data = chatty_log(2000, 7)
    half = data.index(b"\n", len(data) // 2) + 1
    for job, bulk in ((bulk_job, True), (line_job, False)):
        ingest(job, data[:half], bulk=bulk)
        # The follower starts again a little before its cursor: Docker's since is inclusive.
        ingest(job, data[half - 20_000 :], bulk=bulk)
    assert rows(bulk_job) == rows(line_job)
    assert len(rows(bulk_job)) == 2000
    assert cursor(bulk_job) == cursor(line_job)


def test_caps_and_masking_fall_back_to_the_per_line_way(two_jobs, settings):
    settings.JOB_LOG_MAX_BYTES = 20_000
    settings.JOB_LOG_LINE_MAX_BYTES = 30
    bulk_job, line_job = two_jobs
    data = chatty_log(1500, 9)
    ingest(bulk_job, data, bulk=True)
    ingest(line_job, data, bulk=False)
    assert rows(bulk_job) == rows(line_job)
    assert rows(bulk_job)[-1][3].startswith("[oneoff] log truncated:")
    assert cursor(bulk_job) == cursor(line_job)


def test_a_stored_batch_compares_and_reads_like_a_list(two_jobs):
    job, _ = two_jobs
    writer = LogWriter.for_job(job.id)
    parser = JsonFileParser()
    for item in parser.feed_blocks(json_line(SECOND * 10**9, "stderr", "one\n")):
        writer.add_batch(item)
    batch = writer.flush()
    assert isinstance(batch, StoredBatch)
    assert len(batch) == 1
    assert (batch[0].text, batch[0].stream) == ("one", 2)
    assert writer.flush() == []


def test_the_queue_budget_bounds_all_followers_but_never_stops_one_alone():
    from jobs.logs.follow import QueueBudget

    budget = QueueBudget(100)
    assert budget.take(80, 0.01, alone=True)
    assert not budget.take(30, 0.01, alone=False)  # over the limit: waits, then gives up
    assert budget.take(30, 0.01, alone=True)  # a follower with nothing queued moves on
    budget.give(80)
    assert budget.take(60, 0.01, alone=False)
    budget.give(90)
    assert budget.used == 0


def test_an_error_of_the_storing_thread_stops_the_follower(two_jobs, monkeypatch):
    import threading

    from jobs.logs.follow import LogFollower
    from jobs.logs.store import LogConflict

    job, _ = two_jobs

    def conflict(self, batch):
        raise LogConflict(job.id)

    monkeypatch.setattr(LogWriter, "store", conflict)
    follower = LogFollower(job.id, "no-container", lambda: None)  # type: ignore[arg-type,return-value]
    writer = LogWriter.for_job(job.id)
    thread = threading.Thread(target=follower._write, args=(writer,), daemon=True)
    thread.start()
    for i in range(5):
        follower._put([(SECOND * 10**9 + i, 1, b"line\n")])
    follower._put(None)
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(follower.error, LogConflict)
    assert follower.stopping.is_set()


def test_a_follower_from_the_start_of_a_quiet_job_makes_no_writer(two_jobs, monkeypatch):
    """Followed from its container's start (``files``), a job that prints nothing costs its
    writer no cursor read, no database connection and no storing thread."""
    import threading

    from jobs.logs.follow import LogFollower

    job, _ = two_jobs
    made: list[str] = []
    monkeypatch.setattr(LogWriter, "for_job", classmethod(lambda cls, job_id: made.append(job_id)))
    follower = LogFollower(job.id, "no-container", lambda: None)  # type: ignore[arg-type,return-value]
    thread = threading.Thread(target=follower._write, args=(None,), daemon=True)
    thread.start()
    follower._put([])  # nothing read yet (what a flush interval with no lines hands on)
    follower._put(None)
    thread.join(10)
    assert not thread.is_alive()
    assert follower.error is None
    assert made == []
    assert not [t for t in threading.enumerate() if t.name == f"logdb-{job.id}"]


def test_a_follower_from_the_start_makes_its_writer_at_the_first_lines(two_jobs, monkeypatch):
    import threading

    from jobs.logs.follow import LogFollower

    job, _ = two_jobs
    writer = LogWriter.for_job(job.id)
    monkeypatch.setattr(LogWriter, "for_job", classmethod(lambda cls, job_id: writer))
    stored: list[list[str]] = []
    monkeypatch.setattr(
        LogWriter, "store", lambda self, batch: stored.append([x.text for x in batch.lines])
    )
    follower = LogFollower(job.id, "no-container", lambda: None)  # type: ignore[arg-type,return-value]
    thread = threading.Thread(target=follower._write, args=(None,), daemon=True)
    thread.start()
    follower._put([(SECOND * 10**9 + i, 1, f"line {i}\n".encode()) for i in range(3)])
    follower._put(None)
    thread.join(10)
    assert not thread.is_alive()
    assert follower.error is None
    assert [text for batch in stored for text in batch] == ["line 0", "line 1", "line 2"]

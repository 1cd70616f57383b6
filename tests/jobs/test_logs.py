"""Log parsing, cleaning and batch storage (jobs/logs/), on the real database."""

import struct

import psycopg
import pytest

from jobs.launch import create_job
from jobs.logs.clean import clean_text, split_bytes
from jobs.logs.parse import FrameParser, parse_timestamp_ns
from jobs.logs.store import LogConflict, LogWriter, lines_stored
from jobs.models import Job, JobLogLine, LogStream
from tests.helpers import follow_container

T0 = 1_780_000_000 * 10**9  # some nanosecond timestamp


def frame(stream: int, ts: str, text: bytes) -> bytes:
    payload = ts.encode() + b" " + text
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_it_parses_docker_timestamps():
    assert parse_timestamp_ns(b"1970-01-01T00:00:01.000000002Z") == 1_000_000_002
    assert parse_timestamp_ns(b"2026-11-29T12:17:29.042672859Z") == 1_795_954_649_042_672_859
    assert parse_timestamp_ns(b"2026-11-29T13:17:29.5+01:00") == 1_795_954_649_500_000_000


def test_it_parses_frames_split_anywhere():
    data = (
        frame(1, "2026-11-29T12:17:29.042672859Z", b"hello\n")
        + frame(2, "2026-11-29T12:17:29.042672860Z", b"oops\n")
        + frame(1, "2026-11-29T12:17:30.000000000Z", b"partial")
    )
    whole = FrameParser().feed(data)
    parser = FrameParser()
    pieces = [m for i in range(len(data)) for m in parser.feed(data[i : i + 1])]
    assert pieces == whole
    assert [(s, p) for _, s, p in whole] == [
        (LogStream.STDOUT, b"hello\n"),
        (LogStream.STDERR, b"oops\n"),
        (LogStream.STDOUT, b"partial"),
    ]
    assert whole[1][0] - whole[0][0] == 1


def test_split_bytes_keeps_utf8_characters_whole():
    text = ("é" * 10).encode()  # 2 bytes each
    pieces = list(split_bytes(text, 5))
    assert all(len(p) <= 5 for p in pieces)
    assert b"".join(pieces) == text
    assert all(p.decode() for p in pieces)  # no piece cuts a character


def test_clean_text_replaces_invalid_utf8_and_drops_nul():
    assert clean_text(b"a\x00b\xff") == "ab\ufffd"


@pytest.fixture
def job(job_service):
    return create_job(job_service, "true")


def stored(job):
    return list(JobLogLine.objects.filter(job=job).order_by("seq").values_list("text", flat=True))


def test_the_writer_stores_batches_and_moves_the_cursor(job):
    writer = LogWriter.for_job(job.id)
    writer.add(T0, LogStream.STDOUT, b"a\n")
    writer.add(T0, LogStream.STDERR, b"b\n")  # same nanosecond
    writer.add(T0 + 5, LogStream.STDOUT, b"c\n")
    writer.add(T0 + 5, LogStream.STDOUT, b"d\n")
    assert [line.text for line in writer.flush()] == ["a", "b", "c", "d"]
    job.refresh_from_db()
    assert (job.log_cursor_ns, job.log_cursor_count, job.log_line_count) == (T0 + 5, 2, 4)
    stamps = list(job.log_lines.order_by("seq").values_list("timestamp", flat=True))
    assert len(set(stamps)) == 4  # ties nudged by a microsecond
    assert stamps == sorted(stamps)

    # A new follower resumes: Docker repeats messages at the cursor's time (since is inclusive).
    again = LogWriter.for_job(job.id)
    assert again.since == f"{(T0 + 5) // 10**9}.{(T0 + 5) % 10**9:09d}"
    again.add(T0 + 5, LogStream.STDOUT, b"c\n")
    again.add(T0 + 5, LogStream.STDOUT, b"d\n")
    again.add(T0 + 5, LogStream.STDOUT, b"e\n")
    again.add(T0 + 9, LogStream.STDOUT, b"f\n")
    again.flush()
    assert stored(job) == ["a", "b", "c", "d", "e", "f"]
    assert list(job.log_lines.order_by("seq").values_list("seq", flat=True)) == list(range(6))


def test_lines_over_the_cap_are_split(job, settings):
    settings.JOB_LOG_LINE_MAX_BYTES = 4
    writer = LogWriter.for_job(job.id)
    writer.add(T0, LogStream.STDOUT, b"abcdefghij\n")
    writer.flush()
    assert stored(job) == ["abcd", "efgh", "ij"]


def test_the_byte_cap_stores_one_truncation_line_saying_how_much_was_dropped(job, settings):
    settings.JOB_LOG_MAX_BYTES = 20
    writer = LogWriter.for_job(job.id)
    for i in range(10):
        writer.add(T0 + i, LogStream.STDOUT, b"12345\n")  # 6 bytes each
    writer.flush()
    texts = stored(job)
    assert texts[:3] == ["12345"] * 3
    assert len(texts) == 4
    assert "log truncated" in texts[3]
    assert "42 bytes" in texts[3]  # 7 lines of 6 bytes
    # Later output, even after a restart of the follower, only grows the dropped count.
    again = LogWriter.for_job(job.id)
    again.add(T0 + 100, LogStream.STDOUT, b"123456789\n")
    again.flush()
    texts = stored(job)
    assert len(texts) == 4
    assert "52 bytes" in texts[3]
    job.refresh_from_db()
    assert job.log_dropped_bytes == 52
    assert job.log_bytes == 18


def test_a_second_writer_for_the_same_job_is_refused(job):
    first = LogWriter.for_job(job.id)
    second = LogWriter.for_job(job.id)
    first.add(T0, LogStream.STDOUT, b"one\n")
    first.flush()
    second.add(T0, LogStream.STDOUT, b"one\n")
    with pytest.raises(LogConflict):
        second.flush()
    assert stored(job) == ["one"]


def test_lines_stored_is_sent_with_each_stored_batch(job):
    got = []

    def receiver(sender, job_id, lines, **kwargs):
        got.append((job_id, [x.text for x in lines]))

    lines_stored.connect(receiver)
    try:
        writer = LogWriter.for_job(job.id)
        writer.add(T0, LogStream.STDOUT, b"hi\n")
        writer.flush()
        writer.flush()  # nothing new: no call
    finally:
        lines_stored.disconnect(receiver)
    assert got == [(job.id, ["hi"])]


def test_a_failing_receiver_is_logged_and_ignored(job, caplog):
    def broken(sender, job_id, lines, **kwargs):
        raise RuntimeError("boom")

    lines_stored.connect(broken)
    try:
        writer = LogWriter.for_job(job.id)
        writer.add(T0, LogStream.STDOUT, b"hi\n")
        assert [line.text for line in writer.flush()] == ["hi"]
    finally:
        lines_stored.disconnect(broken)
    assert "boom" in caplog.text
    assert JobLogLine.objects.filter(job=job).count() == 1


@pytest.mark.docker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_follower_stores_a_real_containers_output_within_the_cap(
    job_service, docker_client, busybox_image, settings, runner_instance
):
    settings.JOB_LOG_MAX_BYTES = 100_000
    job = create_job(job_service, "true")
    Job.objects.filter(pk=job.pk).update(status="running")
    command = "seq 1 100000; echo end >&2"
    follower = follow_container(docker_client, busybox_image, runner_instance, job.id, command)
    assert follower.done, follower.error
    job.refresh_from_db()
    texts = stored(job)
    assert texts[:5] == ["1", "2", "3", "4", "5"]
    assert "log truncated" in texts[-1], (
        len(texts),
        job.log_bytes,
        job.log_dropped_bytes,
        texts[-3:],
    )
    assert job.log_bytes <= 100_000
    total = sum(len(str(i)) + 1 for i in range(1, 100001)) + len("end\n")
    assert job.log_bytes + job.log_dropped_bytes == total


PIECE = 16 * 1024  # Docker sends a longer line in pieces of this size, without a newline


def test_pieces_of_a_long_line_are_counted_without_a_newline_each(job, settings):
    # A 40,000-byte line (and its newline) arrives as 16 KiB, 16 KiB and the rest with "\n".
    settings.JOB_LOG_MAX_BYTES = 20_000
    writer = LogWriter.for_job(job.id)
    line = b"x" * 40_000 + b"\n"
    pieces = [line[i : i + PIECE] for i in range(0, len(line), PIECE)]
    writer.add_batch([(T0 + i, LogStream.STDOUT, piece) for i, piece in enumerate(pieces)])
    writer.add_batch([(T0 + 10, LogStream.STDOUT, b"after\n")])
    writer.flush()
    job.refresh_from_db()
    assert job.log_bytes == PIECE
    # Exactly what was printed and not stored: the rest of the line, its newline, "after\n".
    assert job.log_dropped_bytes == 40_001 - PIECE + 6
    assert f"({40_001 - PIECE + 6} bytes)" in stored(job)[-1]


def test_stored_and_dropped_bytes_add_up_to_what_was_printed_when_split_here(job, settings):
    settings.JOB_LOG_MAX_BYTES = 9
    settings.JOB_LOG_LINE_MAX_BYTES = 4
    writer = LogWriter.for_job(job.id)
    writer.add(T0, LogStream.STDOUT, b"abcdefghij")  # no newline: a piece, split in 4-byte ones
    writer.add(T0 + 1, LogStream.STDOUT, b"klm\n")
    writer.flush()
    job.refresh_from_db()
    assert stored(job)[:2] == ["abcd", "efgh"]
    assert job.log_bytes == 8
    assert job.log_dropped_bytes == 2 + 4  # "ij" and "klm\n"


@pytest.mark.docker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_long_line_past_the_cap_counts_exactly_the_bytes_it_dropped(
    job_service, docker_client, busybox_image, settings, runner_instance
):
    settings.JOB_LOG_MAX_BYTES = 100_000
    job = create_job(job_service, "true")
    Job.objects.filter(pk=job.pk).update(status="running")
    printed = 1_000_000  # one line without a newline: 62 pieces of 16 KiB and a rest
    command = f"head -c {printed} /dev/zero | tr '\\0' x"
    follower = follow_container(docker_client, busybox_image, runner_instance, job.id, command)
    assert follower.done, follower.error
    job.refresh_from_db()
    assert job.log_bytes + job.log_dropped_bytes == printed
    assert f"({job.log_dropped_bytes} bytes)" in stored(job)[-1]


def _kill_my_connection() -> None:
    """End this thread's database session from another one, as a PostgreSQL restart does."""
    from django.db import connection

    pid = connection.cursor().connection.info.backend_pid
    with psycopg.connect(_dsn(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def _dsn() -> str:
    from django.db import connection

    db = connection.settings_dict
    return (
        f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} "
        f"user={db['USER'] or 'postgres'} dbname={db['NAME']}"
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_flush_is_retried_after_a_database_error(job_service, monkeypatch, caplog):
    monkeypatch.setattr("jobs.logs.store.FLUSH_RETRY_FIRST", 0.01)
    job = create_job(job_service, "true")
    writer = LogWriter.for_job(job.id)
    writer.add(T0, LogStream.STDOUT, b"one\n")
    writer.add(T0 + 1, LogStream.STDOUT, b"two\n")
    _kill_my_connection()  # the flush's first try meets a dead session
    assert [line.text for line in writer.flush()] == ["one", "two"]
    writer.add(T0 + 2, LogStream.STDOUT, b"three\n")
    writer.flush()
    assert stored(job) == ["one", "two", "three"]
    assert "database error, retrying" in caplog.text


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_flush_whose_commit_answer_was_lost_stores_its_lines_once(job_service, monkeypatch):
    from django.db import OperationalError

    monkeypatch.setattr("jobs.logs.store.FLUSH_RETRY_FIRST", 0.01)
    job = create_job(job_service, "true")
    writer = LogWriter.for_job(job.id)
    real_store = LogWriter._store
    calls = []

    def commit_then_fail(self, lines, expected):
        calls.append(len(lines))
        real_store(self, lines, expected)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(LogWriter, "_store", commit_then_fail)
    writer.add(T0, LogStream.STDOUT, b"once\n")
    assert [line.text for line in writer.flush()] == ["once"]
    assert calls == [1]  # not stored a second time
    writer.add(T0 + 1, LogStream.STDOUT, b"next\n")
    writer.flush()
    assert stored(job) == ["once", "next"]
    job.refresh_from_db()
    assert job.log_line_count == 2

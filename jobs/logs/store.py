"""Storing a job's log lines: cleaned, in batches, with the job's resume cursor.

``Job.log_cursor_ns`` is the newest stored message's timestamp and ``Job.log_cursor_count`` how
many stored messages had exactly it; ``LogWriter.flush`` moves both in the same transaction as
the batch of lines they describe, so a follower that resumes (``jobs.logs.follow``) skips exactly
what was stored.

``lines_stored``, the ingest hook: a Django signal sent after each batch of log lines commits,
in the follower's thread, with ``sender=LogWriter`` and the keywords ``job_id`` (str) and
``lines`` (a sequence of StoredLine, made only when read: ``StoredBatch``). Receivers must be
cheap and never block (hand the lines to a queue of your own); it is sent with ``send_robust``,
so an exception in one is logged (by ``django.dispatch``) and ignored. The log-stream forwarder
connects to it (``logstreams.apps``) as a wake-up hint: it reads the lines to send from the
table, after its cursors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import chain, compress, repeat
from operator import ge, itemgetter
from typing import overload

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.dispatch import Signal

from jobs.logs import marks
from jobs.logs.clean import clean_text, split_bytes, truncation_text
from jobs.logs.mask import LogMasker
from jobs.logs.parse import (
    EPOCH,
    USUAL_OVERHEAD,
    JsonBlock,
    StoredLine,
    _cache_seconds,
    _second_cache,
)
from jobs.models import Job, JobLogLine, LogStream

FLUSH_LINES = 5000
FLUSH_BYTES = 2 * 1024 * 1024
# SQLite has one write lock for the whole database, and its busy handler polls (up to every
# 100 ms) instead of queueing: a follower storing a chatty job's log in back-to-back 5000-line
# transactions kept the web's writes (the rate limiter's counters, sessions) waiting for
# seconds. There, batches are small and ingest yields the lock after each commit for as long as
# it held it (at most half the lock's time goes to logs while the job prints flat out).
SQLITE_FLUSH_LINES = 500
SQLITE_FLUSH_BYTES = 128 * 1024
SQLITE_YIELD_MIN = 0.005  # seconds
SQLITE_YIELD_MAX = 0.25
# A flush that meets a database error is tried again after 0.1 s, doubling up to 5 s, for up to
# five minutes; past that it raises, and the supervisor's next follower resumes from the cursor.
FLUSH_RETRY_FIRST = 0.1
FLUSH_RETRY_MAX_DELAY = 5.0
FLUSH_RETRY_FOR = 300.0

logger = logging.getLogger(__name__)

lines_stored = Signal()  # job_id: str, lines: StoredBatch; see the module's docstring


class LogConflict(Exception):
    """Another follower stored lines for this job meanwhile: this one must stop."""


_ts_second_cache: dict[int, str] = {}


def copy_rows(job_id: str, lines: list[StoredLine]) -> str:
    """The lines as rows of COPY's text format: ``job_id, seq, timestamp, stream, text``.

    The texts are escaped all at once (NUL, which a stored text never holds, separates them),
    and timestamps are written from a per-second cache: this runs for every stored line.
    """
    texts = "\x00".join([line.text for line in lines])
    if "\\" in texts:
        texts = texts.replace("\\", "\\\\")
    if "\t" in texts:
        texts = texts.replace("\t", "\\t")
    if "\r" in texts:
        texts = texts.replace("\r", "\\r")
    if "\n" in texts:
        texts = texts.replace("\n", "\\n")
    cache = _ts_second_cache
    rows: list[str] = []
    append = rows.append
    for line, text in zip(lines, texts.split("\x00"), strict=True):
        seconds, micro = divmod(line.timestamp_us, 1_000_000)
        head = cache.get(seconds)
        if head is None:
            if len(cache) > 4096:
                cache.clear()
            head = cache[seconds] = (EPOCH + timedelta(seconds=seconds)).strftime(
                "%Y-%m-%d %H:%M:%S"
            )
        append(f"{job_id}\t{line.seq}\t{head}.{micro:06d}+00\t{line.stream}\t{text}\n")
    return "".join(rows)


# -- lines of the usual form, stored as COPY rows made in bulk -------------------------------------

_PAYLOAD = itemgetter(slice(8, -62))  # a usual json-file line's payload, without its newline
_TIME_NS = itemgetter(slice(-32, -3))  # … its time to the nanosecond (fixed width: ordered)
_TIME_US = itemgetter(slice(-32, -6))  # … and to the microsecond, as stored
_STREAM = itemgetter(-45)  # the "o" of stdout or the "e" of stderr
_STREAM_FIELDS = {111: b"+00\t1\t", 101: b"+00\t2\t"}
_us_heads: dict[int, bytes] = {}


def _time_us(text: bytes) -> int:
    """Microseconds since the epoch of ``2026-11-29T12:17:29.042672`` (UTC; more digits after
    the sixth are cut off)."""
    seconds = _second_cache.get(text[:19])
    if seconds is None:
        seconds = _cache_seconds(text[:19])
    return seconds * 1_000_000 + int(text[20:26])


def _time_ns(text: bytes) -> int:
    """Nanoseconds since the epoch of ``2026-11-29T12:17:29.042672859`` (UTC)."""
    seconds = _second_cache.get(text[:19])
    if seconds is None:
        seconds = _cache_seconds(text[:19])
    return seconds * 1_000_000_000 + int(text[20:29])


def _us_text(us: int) -> bytes:
    seconds, micro = divmod(us, 1_000_000)
    head = _us_heads.get(seconds)
    if head is None:
        if len(_us_heads) > 4096:
            _us_heads.clear()
        head = _us_heads[seconds] = (
            (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S").encode()
        )
    return b"%s.%06d" % (head, micro)


def _unique_times(stamps: list[bytes], last_us: int) -> int:
    """Make the microsecond times ``stamps`` (``_TIME_US``) increase strictly, after
    ``last_us``, as the per-line way does (a time not after the one before becomes that one
    plus a microsecond), changing only the ones that need it; returns the last time."""
    size = len(stamps)
    # Where a time is not after the one before it: usually nowhere.
    bad = list(compress(range(1, size), map(ge, stamps, stamps[1:])))
    if _time_us(stamps[0]) <= last_us:
        bad.insert(0, 0)
    done = 0
    for index in bad:
        if index < done:
            continue  # already put right with the run before it
        prev = last_us if index == 0 else _time_us(stamps[index - 1])
        while index < size:
            now = _time_us(stamps[index])
            if now > prev:
                break
            prev += 1
            stamps[index] = _us_text(prev)
            index += 1
        done = index
    return _time_us(stamps[-1])


@dataclass(slots=True)
class RowBlock:
    """Consecutive lines of a job as COPY rows (text format, each row ending in a newline),
    made from usual json-file lines at once: no backslash, tab or control character in them."""

    first_seq: int
    count: int
    first_us: int
    rows: bytes

    def lines(self) -> list[StoredLine]:
        out = []
        for row in self.rows.split(b"\n")[:-1]:
            _job, seq, stamp, stream, text = row.split(b"\t", 4)
            out.append(StoredLine(int(seq), _time_us(stamp), int(stream), text.decode()))
        return out


class StoredBatch(Sequence[StoredLine]):
    """The lines of one flush, in order: ``StoredLine`` objects, and the ``RowBlock`` rows made
    into ``StoredLine`` objects only when something reads them (the log-stream forwarder's hook
    does not)."""

    def __init__(self, lines: list[StoredLine], blocks: list[RowBlock]) -> None:
        self.loose = lines
        self.blocks = blocks
        self.size = len(lines) + sum(block.count for block in blocks)
        self._all: list[StoredLine] | None = None if blocks else lines

    def all(self) -> list[StoredLine]:
        if self._all is None:
            lines = list(self.loose)
            for block in self.blocks:
                lines.extend(block.lines())
            lines.sort(key=lambda line: line.seq)
            self._all = lines
        return self._all

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> StoredLine: ...
    @overload
    def __getitem__(self, index: slice) -> list[StoredLine]: ...
    def __getitem__(self, index: int | slice) -> StoredLine | list[StoredLine]:
        return self.all()[index]

    def __iter__(self) -> Iterator[StoredLine]:
        return iter(self.all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StoredBatch):
            other = other.all()
        return self.all() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<StoredBatch of {self.size} lines>"

    @property
    def first(self) -> tuple[int, int] | None:
        """(seq, timestamp_us) of the first line, without making the others."""
        firsts = [(line.seq, line.timestamp_us) for line in self.loose[:1]]
        firsts += [(block.first_seq, block.first_us) for block in self.blocks[:1]]
        return min(firsts) if firsts else None


@dataclass(slots=True)
class Batch:
    """What one flush stores, taken from the writer at once (``LogWriter.take``): its lines and
    the job's counters after them. ``LogWriter.store`` stores it, on another thread if need be:
    it reads nothing of the writer that ``add_batch`` changes."""

    lines: StoredBatch
    expected: int  # the job's log_line_count before these lines
    line_count: int
    cursor_ns: int
    cursor_count: int
    stored_bytes: int
    dropped_bytes: int
    truncation_seq: int | None
    truncation_text: str | None  # the truncation marker's new text, when it changed
    # The (seq, microseconds) of its lines to mark (``jobs.logs.marks``), chosen by ``store``.
    marks: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)


def insert_lines(job_id: str, lines: Sequence[StoredLine], blocks: Sequence[RowBlock] = ()) -> None:
    """One COPY on PostgreSQL, multi-row INSERTs elsewhere. Call inside a transaction."""
    if not lines and not blocks:
        return
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(JobLogLine._meta.db_table)
        sql = f"COPY {table} (job_id, seq, timestamp, stream, text) FROM STDIN"
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for start in range(0, len(lines), 5000):
                copy.write(copy_rows(job_id, list(lines[start : start + 5000])))
            for block in blocks:
                copy.write(block.rows)
        return
    if blocks:
        lines = [*lines, *chain.from_iterable(block.lines() for block in blocks)]
    # One prepared INSERT run for every row (sqlite3's executemany), with the timestamps as
    # Django writes them: about 6 times faster than bulk_create's model instances and 500-row
    # statements, so a batch holds SQLite's one write lock that much less.
    table = connection.ops.quote_name(JobLogLine._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    sql = f"INSERT INTO {table} (job_id, seq, timestamp, stream, text) VALUES "  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(
            sql + "(%s, %s, %s, %s, %s)",
            [(job_id, line.seq, adapt(line.timestamp), line.stream, line.text) for line in lines],
        )


@dataclass
class LogWriter:
    """Cleans messages of one job and stores them in batches, moving the job's cursor with them.

    Memory is bounded: messages arrive in pieces of at most ~16 KiB (Docker splits longer lines),
    pieces longer than JOB_LOG_LINE_MAX_BYTES are split again, and a batch is flushed once it
    holds FLUSH_LINES lines or FLUSH_BYTES bytes.
    """

    job_id: str
    line_count: int = 0
    cursor_ns: int = 0
    cursor_count: int = 0
    stored_bytes: int = 0
    dropped_bytes: int = 0
    last_us: int = 0
    truncation_seq: int | None = None
    skip_ns: int = 0
    skip_count: int = 0
    pending: list[StoredLine] = field(default_factory=list)
    # Lines of the usual form, already COPY rows (``add_block``), and how many lines they hold.
    blocks: list[RowBlock] = field(default_factory=list)
    block_lines: int = 0
    pending_bytes: int = 0
    truncation_dirty: bool = False
    dirty: bool = False
    max_bytes: int = 0
    line_max: int = 0
    # The job's env values masked before anything is stored (jobs.logs.mask); None: nothing to
    # mask, or the service's ``mask_secrets`` is off.
    masker: LogMasker | None = field(default=None, repr=False)
    # The first seq the next ``JobLogMark`` may take (``jobs.logs.marks``); touched by ``store``
    # only. A new writer marks its first batch.
    next_mark: int = 0

    @classmethod
    def for_job(cls, job_id: str) -> LogWriter:
        job = Job.objects.only(
            "log_cursor_ns",
            "log_cursor_count",
            "log_line_count",
            "log_bytes",
            "log_dropped_bytes",
        ).get(pk=job_id)
        last = (
            JobLogLine.objects.filter(job_id=job_id)
            .order_by("-seq")
            .values_list("seq", "timestamp", "text")
            .first()
        )
        last_us = 0
        truncation_seq = None
        if last:
            last_us = (last[1] - EPOCH) // timedelta(microseconds=1)
            if last[2].startswith("[oneoff] log truncated:"):
                truncation_seq = last[0]
        return cls(
            job_id=job_id,
            line_count=job.log_line_count,
            cursor_ns=job.log_cursor_ns,
            cursor_count=job.log_cursor_count,
            stored_bytes=job.log_bytes,
            dropped_bytes=job.log_dropped_bytes,
            last_us=last_us,
            truncation_seq=truncation_seq,
            skip_ns=job.log_cursor_ns,
            skip_count=job.log_cursor_count,
            max_bytes=settings.JOB_LOG_MAX_BYTES,
            line_max=settings.JOB_LOG_LINE_MAX_BYTES,
            masker=LogMasker.for_job(job_id),
        )

    @property
    def since(self) -> str | None:
        """Docker's ``since`` for a follower resuming after the stored messages (inclusive)."""
        if not self.cursor_ns:
            return None
        seconds, nanos = divmod(self.cursor_ns, 1_000_000_000)
        return f"{seconds}.{nanos:09d}"

    def add(self, ts_ns: int, stream: int, payload: bytes) -> None:
        """One message (``add_batch`` of one when there is something to mask)."""
        if self.masker is not None:
            self.add_batch([(ts_ns, stream, payload)])
        else:
            self._add(ts_ns, stream, payload)

    def _add(self, ts_ns: int, stream: int, payload: bytes) -> None:
        # Already stored before a restart: Docker's ``since`` is inclusive.
        if ts_ns < self.skip_ns:
            return
        if ts_ns == self.skip_ns and self.skip_count > 0:
            self.skip_count -= 1
            return
        if ts_ns > self.cursor_ns:
            self.cursor_ns, self.cursor_count = ts_ns, 1
        elif ts_ns == self.cursor_ns:
            self.cursor_count += 1
        self.dirty = True
        # Bytes are counted as the job printed them: a line's newline once, and none for a
        # piece of a longer line (Docker sends those without one) nor for the pieces it is
        # split into here, so stored and dropped bytes add up to exactly what it printed.
        raw = len(payload)
        newline = payload.endswith(b"\n")
        if newline:
            payload = payload[:-1]
        if self.truncation_seq is not None:
            self.dropped_bytes += raw
            self.truncation_dirty = True
            return
        ts_us = ts_ns // 1000
        if len(payload) < self.line_max and self.stored_bytes + raw <= self.max_bytes:
            if ts_us <= self.last_us:
                ts_us = self.last_us + 1
            self.last_us = ts_us
            self.pending.append(StoredLine(self.line_count, ts_us, stream, clean_text(payload)))
            self.line_count += 1
            self.stored_bytes += raw
            self.pending_bytes += raw
            return
        offset = 0
        for piece in split_bytes(payload, self.line_max):
            last = offset + len(piece) == len(payload)
            size = len(piece) + (1 if newline and last else 0)
            if self.stored_bytes + size > self.max_bytes:
                self._truncate(ts_us, raw - offset)
                return
            offset += len(piece)
            if ts_us <= self.last_us:
                ts_us = self.last_us + 1
            self.last_us = ts_us
            self.pending.append(StoredLine(self.line_count, ts_us, stream, clean_text(piece)))
            self.line_count += 1
            self.stored_bytes += size
            self.pending_bytes += size

    def add_batch(self, messages: list[tuple[int, int, bytes]] | JsonBlock) -> None:
        """Store the messages (at the next flush), masked first when the job has values to
        mask: the masker may hold back the pieces of an unfinished line (``finish``).

        A ``JsonBlock`` (usual json-file lines) becomes COPY rows at once (``add_block``) when
        nothing in it needs a look line by line; else its messages go the per-line way."""
        if isinstance(messages, JsonBlock):
            if self.add_block(messages):
                return
            messages = messages.messages()
        if self.masker is not None:
            messages = self.masker.feed(messages)
        self._add_batch(messages)

    def finish(self) -> StoredBatch:
        """At the end of the log: store what the masker still holds, and flush."""
        self.release()
        return self.flush()

    def release(self) -> None:
        """At the end of the log: add what the masker still holds."""
        if self.masker is not None:
            self._add_batch(self.masker.release())

    def _add_batch(self, messages: list[tuple[int, int, bytes]]) -> None:
        """``_add`` for each message, with the usual case inlined (this runs for every line):
        a message after the resume point that fits under both caps."""
        pending = self.pending
        append = pending.append
        seq, last_us, stored = self.line_count, self.last_us, self.stored_bytes
        cursor_ns, cursor_count = self.cursor_ns, self.cursor_count
        added = 0
        skip_ns, line_max, max_bytes = self.skip_ns, self.line_max, self.max_bytes
        truncated = self.truncation_seq is not None
        fast = False
        for ts_ns, stream, payload in messages:
            size = len(payload)
            text_size = size - 1 if payload.endswith(b"\n") else size
            if truncated or ts_ns <= skip_ns or text_size >= line_max or stored + size > max_bytes:
                self.line_count, self.last_us, self.stored_bytes = seq, last_us, stored
                self.cursor_ns, self.cursor_count = cursor_ns, cursor_count
                self.pending_bytes += added
                added = 0
                self._add(ts_ns, stream, payload)
                seq, last_us, stored = self.line_count, self.last_us, self.stored_bytes
                cursor_ns, cursor_count = self.cursor_ns, self.cursor_count
                truncated = self.truncation_seq is not None
                continue
            fast = True
            if ts_ns > cursor_ns:
                cursor_ns, cursor_count = ts_ns, 1
            elif ts_ns == cursor_ns:
                cursor_count += 1
            ts_us = ts_ns // 1000
            if ts_us <= last_us:
                ts_us = last_us + 1
            last_us = ts_us
            text = payload[:text_size].decode("utf-8", "replace")
            if "\x00" in text:
                text = text.replace("\x00", "")
            append(StoredLine(seq, ts_us, stream, text))
            seq += 1
            stored += size
            added += size
        self.line_count, self.last_us, self.stored_bytes = seq, last_us, stored
        self.cursor_ns, self.cursor_count = cursor_ns, cursor_count
        self.pending_bytes += added
        if fast:
            self.dirty = True

    def add_block(self, block: JsonBlock) -> bool:
        """Store usual json-file lines as COPY rows made in bulk (no Python work per line but
        for the rare times that need a nudge), when that gives exactly what the per-line way
        would: on PostgreSQL, nothing to mask in them (nor held by the masker), past the resume
        point, under both caps. False (nothing done) otherwise."""
        data = block.data
        if self.truncation_seq is not None or connection.vendor != "postgresql":
            return False
        masker = self.masker
        if masker is not None and (masker.held or masker.carry or masker.contains(data)):
            return False
        lines = block.lines
        count = len(lines)
        if not count:
            return True
        size = len(data) - USUAL_OVERHEAD * count  # as printed: each payload and its newline
        if self.stored_bytes + size > self.max_bytes:
            return False
        if max(map(len, lines)) - USUAL_OVERHEAD - 1 >= self.line_max:
            return False
        stamps_ns = list(map(_TIME_NS, lines))
        if self.skip_ns and _time_ns(min(stamps_ns)) <= self.skip_ns:
            return False
        newest = max(stamps_ns)
        newest_ns = _time_ns(newest)
        if newest_ns > self.cursor_ns:
            self.cursor_ns, self.cursor_count = newest_ns, stamps_ns.count(newest)
        elif newest_ns == self.cursor_ns:
            self.cursor_count += stamps_ns.count(newest)
        stamps = list(map(_TIME_US, lines))
        self.last_us = _unique_times(stamps, self.last_us)
        first_us = _time_us(stamps[0])
        if b'"stream":"stderr"' not in data:
            streams: Iterator[bytes] = repeat(_STREAM_FIELDS[111], count)
        elif b'"stream":"stdout"' not in data:
            streams = repeat(_STREAM_FIELDS[101], count)
        else:
            streams = map(_STREAM_FIELDS.__getitem__, map(_STREAM, lines))
        seq = self.line_count
        heads = map((self.job_id.encode() + b"\t%d\t").__mod__, range(seq, seq + count))
        rows = b"".join(
            chain.from_iterable(
                zip(heads, stamps, streams, map(_PAYLOAD, lines), repeat(b"\n", count), strict=True)
            )
        )
        self.blocks.append(RowBlock(seq, count, first_us, rows))
        self.block_lines += count
        self.line_count += count
        self.stored_bytes += size
        self.pending_bytes += size
        self.dirty = True
        return True

    def _truncate(self, ts_us: int, dropped: int) -> None:
        if ts_us <= self.last_us:
            ts_us = self.last_us + 1
        self.last_us = ts_us
        self.truncation_seq = self.line_count
        self.dropped_bytes += dropped
        self.pending.append(
            StoredLine(
                self.line_count,
                ts_us,
                LogStream.STDERR,
                truncation_text(self.max_bytes, self.dropped_bytes),
            )
        )
        self.line_count += 1

    @property
    def should_flush(self) -> bool:
        if connection.vendor == "sqlite":
            return (
                len(self.pending) >= SQLITE_FLUSH_LINES or self.pending_bytes >= SQLITE_FLUSH_BYTES
            )
        return (
            len(self.pending) + self.block_lines >= FLUSH_LINES or self.pending_bytes >= FLUSH_BYTES
        )

    def flush(self) -> StoredBatch:
        """Store the pending lines and the cursor in one transaction; returns what was stored
        (``take`` then ``store``)."""
        batch = self.take()
        if batch is None:
            return StoredBatch([], [])
        return self.store(batch)

    def take(self) -> Batch | None:
        """The pending lines and the cursor as they are now, to store (None: nothing new); the
        writer goes on with an empty batch."""
        lines = StoredBatch(self.pending, self.blocks)
        if not lines and not self.truncation_dirty and not self.dirty:
            return None
        batch = Batch(
            lines=lines,
            expected=self.line_count - len(lines),
            line_count=self.line_count,
            cursor_ns=self.cursor_ns,
            cursor_count=self.cursor_count,
            stored_bytes=self.stored_bytes,
            dropped_bytes=self.dropped_bytes,
            truncation_seq=self.truncation_seq,
            truncation_text=(
                truncation_text(self.max_bytes, self.dropped_bytes)
                if self.truncation_dirty and self.truncation_seq is not None
                else None
            ),
        )
        self.truncation_dirty = False
        self.pending = []
        self.blocks = []
        self.block_lines = 0
        self.pending_bytes = 0
        self.dirty = False
        return batch

    def store(self, batch: Batch) -> StoredBatch:
        """Store a batch (``take``) and its cursor in one transaction; returns its lines.

        A database error (a restart, a lost connection) is retried with backoff, for up to
        FLUSH_RETRY_FOR seconds, on a new connection: the lines stay pending meanwhile (the
        follower's bounded queue holds the rest back). The transaction stores lines and cursor
        together, and the compare-and-set on ``log_line_count`` tells a commit whose answer was
        lost (the count moved to ours: stored once, not again) from one that never happened."""
        lines = batch.lines
        batch.marks, next_mark = marks.choose(lines.loose, lines.blocks, self.next_mark)
        began = time.monotonic()
        delay = FLUSH_RETRY_FIRST
        deadline = time.monotonic() + FLUSH_RETRY_FOR
        failing_since: float | None = None
        while True:
            try:
                self._store(batch, batch.expected)
                break
            except (OperationalError, InterfaceError) as exc:
                if connection.in_atomic_block:
                    raise  # inside a caller's transaction: not ours to retry
                connection.close()
                if lines and self._stored_already(batch):
                    break
                if time.monotonic() >= deadline:
                    raise
                if failing_since is None:
                    failing_since = time.monotonic()
                    logger.warning(
                        "storing the log of %s: database error, retrying: %s", self.job_id, exc
                    )
                time.sleep(delay)
                delay = min(delay * 2, FLUSH_RETRY_MAX_DELAY)
        self.next_mark = next_mark
        if failing_since is not None:
            logger.warning(
                "stored the log of %s after %.1f s of database errors",
                self.job_id,
                time.monotonic() - failing_since,
            )
        if connection.vendor == "sqlite":
            # A lower priority than the web's writes: leave the lock free a while (see above).
            held = time.monotonic() - began
            time.sleep(min(SQLITE_YIELD_MAX, max(SQLITE_YIELD_MIN, held)))
        if lines:
            notify(self.job_id, lines)
        return lines

    def _stored_already(self, batch: Batch) -> bool:
        """After an error: whether the batch committed anyway (LogConflict if another writer
        moved the job's count elsewhere)."""
        try:
            count = Job.objects.filter(pk=self.job_id).values_list("log_line_count", flat=True)
            now = count.first()
        except (OperationalError, InterfaceError):
            connection.close()
            return False
        if now == batch.line_count:
            return True
        if now != batch.expected:
            raise LogConflict(self.job_id)
        return False

    def _store(self, batch: Batch, expected: int) -> None:
        lines = batch.lines
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Not waiting for this commit's WAL flush is safe: lines and cursor commit
                # together, so a database crash loses both and the next follower reads them
                # again; and the synchronous commit that records the job's exit flushes them.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit = off")
            updated = Job.objects.filter(pk=self.job_id, log_line_count=expected).update(
                log_cursor_ns=batch.cursor_ns,
                log_cursor_count=batch.cursor_count,
                log_line_count=batch.line_count,
                log_bytes=batch.stored_bytes,
                log_dropped_bytes=batch.dropped_bytes,
            )
            if not updated:
                raise LogConflict(self.job_id)
            insert_lines(self.job_id, lines.loose, lines.blocks)
            marks.add(self.job_id, batch.marks)
            first = lines.first
            if first is not None and first[0] == 0:
                # Docker stamps a job's first lines before the StartedAt it reports: keep
                # startedAt no later than the first line, so a client reading the logs from
                # startedAt (as Render's CLI does) misses none.
                moment = EPOCH + timedelta(microseconds=first[1])
                Job.objects.filter(pk=self.job_id, started_at__gt=moment).update(started_at=moment)
            text = batch.truncation_text
            if text is not None and batch.truncation_seq is not None:
                JobLogLine.objects.filter(job_id=self.job_id, seq=batch.truncation_seq).update(
                    text=text
                )
                for line in lines.loose:  # the marker is never in a block
                    if line.seq == batch.truncation_seq:
                        line.text = text


def notify(job_id: str, lines: Sequence[StoredLine]) -> None:
    """Tell ``lines_stored``'s receivers about a committed batch; a failing one is ignored."""
    lines_stored.send_robust(sender=LogWriter, job_id=job_id, lines=lines)

"""Job logs: parse Docker's log stream, clean it, store it in batches, and read it back.

A container's messages come from one of two places, with the same content. Docker's json-file
driver writes each to a file, one JSON object a line (``JsonFileParser``); a follower on the
engine's machine tails that file. Elsewhere it asks the ``/containers/{id}/logs`` endpoint (with
``timestamps=1`` and no TTY), which sends frames (``FrameParser``): an 8-byte header (stream 1 =
stdout, 2 = stderr; 3 zero bytes; a big-endian length) followed by one message that starts with
an RFC 3339 timestamp with nanoseconds. Each message is one line (with its ``\\n``) or, for a
longer line, a 16 KiB piece of it without one.

Resuming without gap or duplicate: ``Job.log_cursor_ns`` is the newest stored message's
timestamp and ``Job.log_cursor_count`` how many stored messages had exactly it. A follower reads
messages from that time on (the endpoint's ``since`` is inclusive; the file is read from its
start) and skips those up to the cursor. Both move in the same transaction as the batch of lines
they describe.

``BATCH_LISTENERS``: callables ``listener(job_id: str, lines: list[StoredLine])`` run after each
batch of log lines commits, in the follower's thread. They must be cheap and never block (hand the
lines to a queue of your own); an exception in one is logged and ignored. The log-stream forwarder
registers itself here.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from jobs.models import Job, JobLogLine, LogStream

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.25  # seconds: stored lines are at most this old (plus one INSERT)
FLUSH_LINES = 5000  # also the largest batch offered to a log stream (its buffer: 10,000)
FLUSH_BYTES = 2 * 1024 * 1024
# Parsed chunks between a follower's reader and writer: each from a 64 KiB file read, or up to
# 256 KiB of the endpoint's stream.
QUEUE_CHUNKS = 64
HEADER = 8
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

BATCH_LISTENERS: list[Callable[[str, list[StoredLine]], None]] = []


@dataclass(slots=True)
class StoredLine:
    seq: int
    timestamp_us: int  # microseconds since the epoch, unique and increasing per job
    stream: int
    text: str

    @property
    def timestamp(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.timestamp_us)


# --- parsing -----------------------------------------------------------------------------------

_second_cache: dict[bytes, int] = {}


def parse_timestamp_ns(raw: bytes) -> int:
    """Nanoseconds since the epoch of Docker's ``2026-11-29T12:17:29.042672859Z`` (any offset)."""
    text = raw.decode("ascii")
    main, frac, offset = text, "", "+00:00"
    if text.endswith("Z"):
        main = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        main, offset = text[:-6], text[-6:]
    if "." in main:
        main, frac = main.split(".", 1)
    key = (main + offset).encode()
    seconds = _second_cache.get(key)
    if seconds is None:
        moment = datetime.fromisoformat(main + offset)
        seconds = int((moment - EPOCH).total_seconds())
        if len(_second_cache) > 4096:
            _second_cache.clear()
        _second_cache[key] = seconds
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return seconds * 1_000_000_000 + nanos


def _cache_seconds(second: bytes) -> int:
    """Epoch seconds of ``2026-11-29T12:17:29`` (UTC), remembered: the parsers look each line's
    second up in ``_second_cache`` and call this only for a second they have not seen."""
    seconds = parse_timestamp_ns(second + b"Z") // 1_000_000_000
    if len(_second_cache) > 4096:
        _second_cache.clear()
    _second_cache[second] = seconds
    return seconds


class FrameParser:
    """Turns the bytes of a multiplexed log stream into ``(timestamp_ns, stream, payload)``."""

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        buf = self.rest + data if self.rest else bytes(data)
        out = []
        append = out.append
        cache = _second_cache
        pos = 0
        size = len(buf)
        while size - pos >= HEADER:
            start = pos + HEADER
            end = start + int.from_bytes(buf[pos + 4 : start], "big")
            if end > size:
                break
            stream = 2 if buf[pos] == 2 else 1
            pos = end
            # Docker's fixed format: 2026-11-29T12:17:29.042672859Z (30 bytes) and a space.
            if buf[start + 29 : start + 31] == b"Z " and buf[start + 19] == 46:  # "."
                seconds = cache.get(buf[start : start + 19])
                if seconds is None:
                    seconds = _cache_seconds(buf[start : start + 19])
                ts = seconds * 1_000_000_000 + int(buf[start + 20 : start + 29])
                append((ts, stream, buf[start + 31 : end]))
                continue
            space = buf.find(b" ", start, end)
            if space <= start:
                continue
            try:
                ts = parse_timestamp_ns(buf[start:space])
            except ValueError:
                continue
            append((ts, stream, buf[space + 1 : end]))
        self.rest = buf[pos:]
        return out


class JsonFileParser:
    """Turns the bytes of Docker's json-file log into ``(timestamp_ns, stream, payload)``.

    Each line is ``{"log":"<message>","stream":"stdout","time":"<RFC 3339, 9 digits>Z"}``: the
    same messages, split the same way, that the logs endpoint serves (it reads this very file).
    The usual line is decoded by slicing; anything else (escapes, extra fields such as ``attrs``,
    another time format) goes through ``json.loads``.
    """

    STDOUT_TAIL = b'","stream":"stdout","time":"'
    STDERR_TAIL = b'","stream":"stderr","time":"'
    MAX_LINE = 1024 * 1024  # Docker writes at most 16 KiB a message (x6 when escaped)

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        lines = (self.rest + data if self.rest else data).split(b"\n")
        self.rest = lines.pop()
        if len(self.rest) > self.MAX_LINE:
            logger.warning("dropping a json-file log line longer than %d bytes", self.MAX_LINE)
            self.rest = b""
        out = []
        append = out.append
        cache = _second_cache
        stderr_tail = self.STDERR_TAIL
        tails = (self.STDOUT_TAIL, stderr_tail)
        for line in lines:
            # Fixed tail: '","stream":"stdout","time":"' (28) + timestamp (30) + '"}' (2).
            tail = line[-60:-32]
            if (
                tail in tails
                and line.startswith(b'{"log":"')
                and line[-13] == 46  # "."
                and line[-3] == 90  # "Z"
            ):
                # The payload goes without its newline: the writer drops that anyway.
                end = len(line) - 60
                if line.endswith(b"\\n", 8, end) and line.find(b"\\", 8, end - 2) < 0:
                    payload = line[8 : end - 2]
                elif line.find(b"\\", 8, end) < 0:
                    payload = line[8:end]
                else:
                    raw = line[8:end]
                    payload = json.loads(b'"' + raw + b'"').encode("utf-8", "surrogatepass")
                key = line[-32:-13]
                seconds = cache.get(key)
                if seconds is None:
                    seconds = _cache_seconds(key)
                ts = seconds * 1_000_000_000 + int(line[-12:-3])
                append((ts, 2 if tail == stderr_tail else 1, payload))
                continue
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                ts = parse_timestamp_ns(entry["time"].encode())
                payload = entry["log"].encode("utf-8", "surrogatepass")
            except (ValueError, KeyError, TypeError, AttributeError):
                logger.warning("skipping an unreadable json-file log line: %.200r", line)
                continue
            append((ts, 2 if entry.get("stream") == "stderr" else 1, payload))
        return out


# --- cleaning ----------------------------------------------------------------------------------


def split_bytes(payload: bytes, limit: int) -> Iterator[bytes]:
    """Pieces of at most ``limit`` bytes, never cutting a UTF-8 character in two."""
    start = 0
    size = len(payload)
    while size - start > limit:
        end = start + limit
        back = 0
        # Step back over continuation bytes (0b10xxxxxx) so a character stays whole.
        while back < 3 and (payload[end - back] & 0xC0) == 0x80:
            back += 1
        if back < 3:
            end -= back
        yield payload[start:end]
        start = end
    yield payload[start:]


def clean_text(piece: bytes) -> str:
    """Text safe to store: invalid UTF-8 replaced, NUL removed (PostgreSQL refuses it)."""
    text = piece.decode("utf-8", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text


def format_bytes(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"  # pragma: no cover


def truncation_text(cap: int, dropped: int) -> str:
    return (
        f"[oneoff] log truncated: this job's output passed the {format_bytes(cap)} log cap "
        f"(JOB_LOG_MAX_BYTES); {format_bytes(dropped)} ({dropped} bytes) after this line "
        "were not stored"
    )


# --- storing -----------------------------------------------------------------------------------


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
    rows = []
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


def insert_lines(job_id: str, lines: list[StoredLine]) -> None:
    """One COPY on PostgreSQL, multi-row INSERTs elsewhere. Call inside a transaction."""
    if not lines:
        return
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(JobLogLine._meta.db_table)
        sql = f"COPY {table} (job_id, seq, timestamp, stream, text) FROM STDIN"
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for start in range(0, len(lines), 5000):
                copy.write(copy_rows(job_id, lines[start : start + 5000]))
    else:
        JobLogLine.objects.bulk_create(
            [
                JobLogLine(
                    job_id=job_id,
                    seq=line.seq,
                    timestamp=line.timestamp,
                    stream=line.stream,
                    text=line.text,
                )
                for line in lines
            ],
            batch_size=500,
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
    pending_bytes: int = 0
    truncation_dirty: bool = False
    dirty: bool = False
    max_bytes: int = 0
    line_max: int = 0

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
        )

    @property
    def since(self) -> str | None:
        """Docker's ``since`` for a follower resuming after the stored messages (inclusive)."""
        if not self.cursor_ns:
            return None
        seconds, nanos = divmod(self.cursor_ns, 1_000_000_000)
        return f"{seconds}.{nanos:09d}"

    def add(self, ts_ns: int, stream: int, payload: bytes) -> None:
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
        if payload.endswith(b"\n"):
            payload = payload[:-1]
        if self.truncation_seq is not None:
            self.dropped_bytes += len(payload) + 1
            self.truncation_dirty = True
            return
        ts_us = ts_ns // 1000
        size = len(payload) + 1
        if size <= self.line_max and self.stored_bytes + size <= self.max_bytes:
            if ts_us <= self.last_us:
                ts_us = self.last_us + 1
            self.last_us = ts_us
            self.pending.append(StoredLine(self.line_count, ts_us, stream, clean_text(payload)))
            self.line_count += 1
            self.stored_bytes += size
            self.pending_bytes += size
            return
        offset = 0
        for piece in split_bytes(payload, self.line_max):
            size = len(piece) + 1
            if self.stored_bytes + size > self.max_bytes:
                self._truncate(ts_us, len(payload) + 1 - offset)
                return
            offset += len(piece)
            if ts_us <= self.last_us:
                ts_us = self.last_us + 1
            self.last_us = ts_us
            self.pending.append(StoredLine(self.line_count, ts_us, stream, clean_text(piece)))
            self.line_count += 1
            self.stored_bytes += size
            self.pending_bytes += size

    def add_batch(self, messages: list[tuple[int, int, bytes]]) -> None:
        """``add`` for each message, with the usual case inlined (this runs for every line):
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
            size = len(payload) if payload.endswith(b"\n") else len(payload) + 1
            if truncated or ts_ns <= skip_ns or size > line_max or stored + size > max_bytes:
                self.line_count, self.last_us, self.stored_bytes = seq, last_us, stored
                self.cursor_ns, self.cursor_count = cursor_ns, cursor_count
                self.pending_bytes += added
                added = 0
                self.add(ts_ns, stream, payload)
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
            text = payload[: size - 1].decode("utf-8", "replace")
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
        return len(self.pending) >= FLUSH_LINES or self.pending_bytes >= FLUSH_BYTES

    def flush(self) -> list[StoredLine]:
        """Store the pending lines and the cursor in one transaction; returns what was stored."""
        lines = self.pending
        if not lines and not self.truncation_dirty and not self.dirty:
            return []
        expected = self.line_count - len(lines)
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Not waiting for this commit's WAL flush is safe: lines and cursor commit
                # together, so a database crash loses both and the next follower reads them
                # again; and the synchronous commit that records the job's exit flushes them.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit = off")
            updated = Job.objects.filter(pk=self.job_id, log_line_count=expected).update(
                log_cursor_ns=self.cursor_ns,
                log_cursor_count=self.cursor_count,
                log_line_count=self.line_count,
                log_bytes=self.stored_bytes,
                log_dropped_bytes=self.dropped_bytes,
            )
            if not updated:
                raise LogConflict(self.job_id)
            insert_lines(self.job_id, lines)
            if lines and lines[0].seq == 0:
                # Docker stamps a job's first lines before the StartedAt it reports: keep
                # startedAt no later than the first line, so a client reading the logs from
                # startedAt (as Render's CLI does) misses none.
                Job.objects.filter(pk=self.job_id, started_at__gt=lines[0].timestamp).update(
                    started_at=lines[0].timestamp
                )
            if self.truncation_dirty and self.truncation_seq is not None:
                text = truncation_text(self.max_bytes, self.dropped_bytes)
                JobLogLine.objects.filter(job_id=self.job_id, seq=self.truncation_seq).update(
                    text=text
                )
                for line in lines:
                    if line.seq == self.truncation_seq:
                        line.text = text
        self.truncation_dirty = False
        self.pending = []
        self.pending_bytes = 0
        self.dirty = False
        if lines:
            notify(self.job_id, lines)
        return lines


def notify(job_id: str, lines: list[StoredLine]) -> None:
    for listener in list(BATCH_LISTENERS):
        try:
            listener(job_id, lines)
        except Exception:
            logger.exception("log batch listener %r failed for %s", listener, job_id)


# --- following a container ---------------------------------------------------------------------


def _raw_chunks(response) -> Iterator[bytes]:
    """The body's bytes as they arrive. Docker sends one HTTP chunk per log message, and
    urllib3's chunk reader costs ~15 µs a chunk; reading the buffered socket in large blocks and
    undoing the chunked encoding here is several times faster."""
    raw = response.raw
    fp = getattr(getattr(raw, "_fp", None), "fp", None)
    if getattr(raw, "chunked", False) and fp is not None and hasattr(fp, "read1"):
        yield from _dechunk(fp)
    elif getattr(raw, "chunked", False):
        yield from raw.read_chunked(decode_content=False)
    else:
        while True:
            data = raw.read1(65536)
            if not data:
                return
            yield data


def _dechunk(fp, block: int = 256 * 1024) -> Iterator[bytes]:
    """Decode HTTP/1.1 chunked transfer encoding from a buffered binary stream."""
    buf = b""
    pos = 0
    while True:
        out = []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
            if size == 0:
                if out:
                    yield b"".join(out)
                return
            end = eol + 2 + size
            if end + 2 > len(buf):
                break
            out.append(buf[eol + 2 : end])
            pos = end + 2
        if out:
            yield b"".join(out)
        data = fp.read1(block)
        if not data:
            return
        buf = buf[pos:] + data
        pos = 0


def open_log_stream(client, container_id: str, since: str | None, follow: bool = True):
    """The raw multiplexed stream of a container's logs (a ``requests`` response)."""
    api = client.api
    params = {"follow": int(follow), "stdout": 1, "stderr": 1, "timestamps": 1}
    if since:
        params["since"] = since
    response = api._get(api._url("/containers/{0}/logs", container_id), params=params, stream=True)
    api._raise_for_status(response)
    sock = api._get_raw_response_socket(response)
    api._disable_socket_timeout(sock)
    return response


def json_file_path(client, attrs: dict) -> str | None:
    """The container's json-file log, when this process may read it directly.

    Reading the file is how Fluent Bit, Filebeat and Vector collect Docker logs at volume: it
    spares the engine decoding every line into an HTTP chunk (five CPU seconds per million lines,
    more than the rest of the pipeline). It needs the engine on this machine (a unix socket), the
    json-file driver without rotation (a rotated-away piece would be a gap), and read access;
    otherwise, or with ``JOB_LOG_SOURCE=api``, the follower uses the logs endpoint.
    """
    if settings.JOB_LOG_SOURCE != "auto":
        return None
    if getattr(client.api, "base_url", "") != "http+docker://localhost":  # docker-py: unix socket
        return None
    log_config = (attrs.get("HostConfig") or {}).get("LogConfig") or {}
    path = attrs.get("LogPath") or ""
    if log_config.get("Type") != "json-file" or "max-size" in (log_config.get("Config") or {}):
        return None
    if not path or not os.access(path, os.R_OK):
        return None
    return path


RESUME_MARGIN_NS = 1_000_000_000  # stdout and stderr are stamped apart: a little disorder


def seek_to_time(log_file, ts_ns: int) -> None:
    """Move a json-file log to a line start at or before the first line stamped ``ts_ns`` or
    later, by bisection (lines are in time order, give or take the margin the caller leaves): a
    follower resuming a long log does not read it all again."""
    lo, hi = 0, os.fstat(log_file.fileno()).st_size
    while hi - lo > 64 * 1024:
        mid = (lo + hi) // 2
        log_file.seek(mid)
        log_file.readline()  # the rest of the line the probe fell in
        messages = JsonFileParser().feed(log_file.readline())  # the next whole line
        if messages and messages[0][0] < ts_ns:
            lo = mid
        else:
            hi = mid
    log_file.seek(lo)
    if lo:
        log_file.readline()


class LogFollower(threading.Thread):
    """Follows one container's logs into the database until the container exited.

    Two threads: this one reads and parses the log into a bounded queue (back-pressure keeps
    memory bounded when the database is slower than the job); a writer drains it and flushes at
    least every FLUSH_INTERVAL. ``done`` is set when everything Docker had was stored, ``error``
    when it stopped early (the supervisor then starts a new follower, which resumes).

    The log is read from the container's json-file when this process can (``json_file_path``),
    else from the engine's logs endpoint; both give the same messages.
    """

    FILE_BLOCK = 64 * 1024  # with QUEUE_CHUNKS: a follower holds at most ~8 MB of parsed lines
    FILE_POLL = 0.05  # seconds between reads at the end of a running container's log file

    def __init__(self, job_id: str, container_id: str, client_factory: Callable[[], object]):
        super().__init__(name=f"logs-{job_id}", daemon=True)
        self.job_id = job_id
        self.container_id = container_id
        self.client_factory = client_factory
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.done = False
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.response = None
        self.source = ""  # "file" or "api", once chosen

    def run(self) -> None:
        writer_thread = None
        client = None
        try:
            writer = LogWriter.for_job(self.job_id)
            writer_thread = threading.Thread(
                target=self._write, args=(writer,), name=f"logw-{self.job_id}", daemon=True
            )
            writer_thread.start()
            client = self.client_factory()
            path = json_file_path(client, client.api.inspect_container(self.container_id))
            self.source = "file" if path else "api"
            logger.info(
                "following the log of %s from %s",
                self.job_id,
                path if path else "the engine's logs endpoint",
            )
            if path:
                self._follow_file(path, writer.cursor_ns)
            else:
                self._follow_api(client, writer)
            self._put(None)
            writer_thread.join()
            if self.error is None and not self.stopping.is_set():
                if self.source == "api":
                    # Docker's json-file follower can end a moment before the last lines of a
                    # container that just exited: read once more, without follow, from the cursor.
                    self._drain(client)
                self.done = True
        except BaseException as exc:
            if self.error is None:
                self.error = exc
            if not self.stopping.is_set():
                logger.warning("log follower for %s stopped: %r", self.job_id, exc)
            self._put(None)
            if writer_thread is not None:
                writer_thread.join(timeout=10)
        finally:
            if self.response is not None:
                self.response.close()
            if client is not None:
                client.close()
            connection.close()

    def _follow_api(self, client, writer: LogWriter) -> None:
        self.response = open_log_stream(client, self.container_id, writer.since)
        parser = FrameParser()
        for chunk in _raw_chunks(self.response):
            if self.stopping.is_set() or self.error is not None:
                break
            messages = parser.feed(chunk)
            if messages:
                self._put(messages)

    def _follow_file(self, path: str, since_ns: int = 0) -> None:
        """Tail the json-file until the engine says the container exited, then read to its end.

        The engine closes the file before it reports the exit, so that last read is complete.
        The writer skips what a previous follower stored (the cursor), as with the endpoint.
        """
        exited = threading.Event()
        wait_error: list[BaseException] = []

        def wait_for_exit() -> None:
            waiter = None
            try:
                waiter = self.client_factory()
                waiter.api.wait(self.container_id, timeout=None)
            except BaseException as exc:
                wait_error.append(exc)
            finally:
                exited.set()
                if waiter is not None:
                    waiter.close()

        threading.Thread(target=wait_for_exit, name=f"wait-{self.job_id}", daemon=True).start()
        parser = JsonFileParser()
        with open(path, "rb") as log_file:
            if since_ns:
                seek_to_time(log_file, since_ns - RESUME_MARGIN_NS)
            while not self.stopping.is_set() and self.error is None:
                data = log_file.read(self.FILE_BLOCK)
                if data:
                    messages = parser.feed(data)
                    if messages:
                        self._put(messages)
                    continue
                if exited.is_set():
                    if wait_error:
                        raise wait_error[0]
                    while data := log_file.read(self.FILE_BLOCK):
                        messages = parser.feed(data)
                        if messages:
                            self._put(messages)
                    return
                exited.wait(self.FILE_POLL)

    def _drain(self, client) -> None:
        writer = LogWriter.for_job(self.job_id)
        response = open_log_stream(client, self.container_id, writer.since, follow=False)
        try:
            parser = FrameParser()
            for chunk in _raw_chunks(response):
                writer.add_batch(parser.feed(chunk))
                if writer.should_flush:
                    writer.flush()
            writer.flush()
        finally:
            response.close()

    def _put(self, item) -> None:
        while True:
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self.error is not None or self.stopping.is_set():
                    return

    def stop(self) -> None:
        self.stopping.set()
        if self.response is not None:
            try:
                self.response.close()
            except Exception:
                logger.debug("closing the log stream of %s", self.job_id, exc_info=True)

    def _write(self, writer: LogWriter) -> None:
        try:
            deadline = time.monotonic() + FLUSH_INTERVAL
            while True:
                timeout = max(0.0, deadline - time.monotonic())
                try:
                    item = self.queue.get(timeout=timeout)
                except queue.Empty:
                    item = ()
                if item is None:
                    writer.flush()
                    return
                writer.add_batch(item)
                if writer.should_flush:
                    writer.flush()
                    deadline = time.monotonic() + FLUSH_INTERVAL
                if time.monotonic() >= deadline:
                    writer.flush()
                    deadline = time.monotonic() + FLUSH_INTERVAL
        except BaseException as exc:
            self.error = exc
            self.stop()
            # Unblock the reader if it waits on a full queue.
            while True:
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    break
        finally:
            connection.close()


# --- reading back (Render's GET /v1/logs) ------------------------------------------------------

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
        order = ("timestamp",) if forward else ("-timestamp",)
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


def iter_lines(job: Job, batch: int = 2000) -> Iterable[JobLogLine]:
    """Every stored line of a job in order, in keyset batches (for downloads)."""
    after = -1
    while True:
        chunk = list(JobLogLine.objects.filter(job=job, seq__gt=after).order_by("seq")[:batch])
        if not chunk:
            return
        yield from chunk
        after = chunk[-1].seq

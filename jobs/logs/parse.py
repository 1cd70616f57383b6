"""Docker's two wire formats of a container's log, parsed into ``(timestamp_ns, stream, payload)``.

A container's messages come from one of two places, with the same content. Docker's json-file
driver writes each to a file, one JSON object a line (``JsonFileParser``); a follower on the
engine's machine tails that file. Elsewhere it asks the ``/containers/{id}/logs`` endpoint (with
``timestamps=1`` and no TTY), which sends frames (``FrameParser``): an 8-byte header (stream 1 =
stdout, 2 = stderr; 3 zero bytes; a big-endian length) followed by one message that starts with
an RFC 3339 timestamp with nanoseconds. Each message is one line (with its ``\\n``) or, for a
longer line, a 16 KiB piece of it without one.

``StoredLine`` is a message as stored: cleaned, numbered and stamped to the microsecond.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

logger = logging.getLogger(__name__)

HEADER = 8
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class StoredLine:
    seq: int
    timestamp_us: int  # microseconds since the epoch, unique and increasing per job
    stream: int
    text: str

    @property
    def timestamp(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.timestamp_us)


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
        out: list[tuple[int, int, bytes]] = []
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
        out: list[tuple[int, int, bytes]] = []
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
                # The payload keeps its newline, as the endpoint's does: a piece of a longer
                # line (Docker sends those without one) counts no newline byte of its own.
                end = len(line) - 60
                if line.endswith(b"\\n", 8, end) and line.find(b"\\", 8, end - 2) < 0:
                    payload = line[8 : end - 2] + b"\n"
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

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
import re
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


# A run of whole json-file lines of the usual form: a payload without any escape but its final
# newline (so no quote, backslash or control character), ``stdout`` or ``stderr``, and the time
# with 9 digits. Such a run is stored without looking at each line in Python (``JsonBlock``).
_USUAL_LINES = re.compile(
    rb'(?:\{"log":"[^"\\\n]*\\n","stream":"std(?:out|err)",'
    rb'"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"\}\n)+'
)
# Docker writes the time as RFC 3339 with nanoseconds, trailing zeros cut (one line in ten has 8
# digits or fewer): those are padded back to 9 first, in one pass over the read.
_SHORT_TIME = re.compile(rb'("time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,8}))?Z"\}\n')


def _nine_digits(match: re.Match[bytes]) -> bytes:
    return b'%s.%sZ"}\n' % (match[1], (match[2] or b"").ljust(9, b"0"))


# Offsets in such a line, from its end: the payload ends 62 bytes before it (``\n","stream":"``
# and the rest), the time's microseconds 6 bytes before it, and 45 before it is the ``o`` of
# ``stdout`` or the ``e`` of ``stderr``.
USUAL_OVERHEAD = 70  # bytes of a usual line that are not its payload (its newline byte aside)


@dataclass(slots=True)
class JsonBlock:
    """Whole json-file lines of the usual form (``_USUAL_LINES``), as read: each ends with its
    newline; ``messages`` gives them one by one, for the writer's per-line way."""

    data: bytes

    @property
    def lines(self) -> list[bytes]:
        lines = self.data.split(b"\n")
        lines.pop()
        return lines

    def messages(self) -> list[tuple[int, int, bytes]]:
        return JsonFileParser().feed(self.data)


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

    def feed_blocks(self, data: bytes) -> list[JsonBlock | list[tuple[int, int, bytes]]]:
        """``feed``, with the whole lines of the usual form (nearly every line a job prints)
        left as they are, in ``JsonBlock``: checked by one regular expression, not line by line.
        The rest (escapes, pieces of long lines, other fields) is parsed as ``feed`` does."""
        buf = self.rest + data if self.rest else data
        end = buf.rfind(b"\n") + 1
        self.rest = buf[end:]
        if len(self.rest) > self.MAX_LINE:
            logger.warning("dropping a json-file log line longer than %d bytes", self.MAX_LINE)
            self.rest = b""
        if not end:
            return []
        if end < len(buf):
            buf = buf[:end]
        buf = _SHORT_TIME.sub(_nine_digits, buf)
        end = len(buf)
        if _USUAL_LINES.fullmatch(buf, 0, end) and (buf.isascii() or _is_utf8(buf, end)):
            return [JsonBlock(buf)]
        out: list[JsonBlock | list[tuple[int, int, bytes]]] = []
        pos = 0
        while pos < end:
            match = _USUAL_LINES.search(buf, pos, end)
            start = match.start() if match is not None else end
            # A match starts a line (the pattern starts with "{" and ends with a newline).
            while start > pos and buf[start - 1] != 10:
                match = _USUAL_LINES.search(buf, start + 1, end)
                start = match.start() if match is not None else end
            if start > pos:
                out.append(self._parse(buf[pos:start].split(b"\n")[:-1]))
            if match is None:
                break
            block = buf[start : match.end()]
            out.append(
                JsonBlock(block)
                if _is_utf8(block, len(block))
                else self._parse(block.split(b"\n")[:-1])
            )
            pos = match.end()
        return out

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        lines = (self.rest + data if self.rest else data).split(b"\n")
        self.rest = lines.pop()
        if len(self.rest) > self.MAX_LINE:
            logger.warning("dropping a json-file log line longer than %d bytes", self.MAX_LINE)
            self.rest = b""
        return self._parse(lines)

    def _parse(self, lines: list[bytes]) -> list[tuple[int, int, bytes]]:
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


def _is_utf8(data: bytes, end: int) -> bool:
    try:
        data[:end].decode("utf-8") if end < len(data) else data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

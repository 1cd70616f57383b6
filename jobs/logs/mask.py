"""Masking a job's env values in its log, once, as the lines are stored.

Every value of the job's env snapshot of at least MASK_MIN_CHARS characters, and every value of
a key that was marked secret when the snapshot was taken (any length), becomes ``****`` in the
stored text, and so in everything that reads it: the logs API and the download, the log
stream, webhook payloads. A service's ``mask_secrets`` (on by default) turns it off.

The matcher is built once per follower (``LogMasker.for_job``): the values as UTF-8 bytes,
matched on the raw payloads before they are decoded, longest first in one regex alternation.
Most batches hold none of the values, so a batch is first looked through as one string
(``contains``) and passed on untouched when nothing is there.

Docker sends a line longer than its buffer (16 KiB) as several messages, the pieces without a
newline but the last; a value may straddle two of them. So the pieces of an unfinished line are
held back until the line is whole (its last piece, or the end of the log), masked together and
then stored as the separate lines they always were (a mask that straddles goes into the piece
where the value starts). Held pieces are the newest messages and were never given to the
writer, so its cursor is not past them: a follower that stops meanwhile reads them again. A
message of the other stream, or more than HOLD_MAX_BYTES held, releases them early; the end of
what was released is kept (``carry``) so that the rest of a value straddling it is still masked
when the line goes on.

Values are never logged, nor is the matcher.
"""

from __future__ import annotations

import re

MASK = b"****"
MASK_MIN_CHARS = 6
HOLD_MAX_BYTES = 256 * 1024
# Up to this many values, the "any value in this batch?" look is one substring search each
# (memmem, several GB/s); past it, one pass of the regex over the batch is cheaper.
SUBSTRING_PREFILTER_MAX = 48

Message = tuple[int, int, bytes]  # (timestamp_ns, stream, payload), as the parsers give them


def maskable_values(values: dict[str, str], secret_keys: list[str] | set[str]) -> list[bytes]:
    """The byte strings to mask for an env of ``values``: each value's lines (a log line never
    holds a newline) of at least MASK_MIN_CHARS characters, or of any length for a secret key.
    A line ending in a carriage return counts with and without it."""
    secret = set(secret_keys)
    found: set[bytes] = set()
    for key, value in values.items():
        least = 1 if key in secret else MASK_MIN_CHARS
        for line in value.split("\n"):
            for form in {line, line.rstrip("\r")}:
                if len(form) >= least:
                    found.add(form.encode("utf-8", "surrogatepass"))
    return sorted(found, key=lambda v: (-len(v), v))


class LogMasker:
    """Masks one job's values in its messages, holding the pieces of an unfinished line."""

    def __init__(self, values: list[bytes]):
        if not values:
            raise ValueError("a masker needs at least one value")
        self.values = sorted(set(values), key=lambda v: (-len(v), v))
        self.pattern = re.compile(b"|".join(re.escape(v) for v in self.values))
        self.substrings = len(self.values) <= SUBSTRING_PREFILTER_MAX
        self.carry_size = len(self.values[0]) - 1
        self.held: list[Message] = []
        self.held_bytes = 0
        self.carry: dict[int, bytes] = {}

    def __repr__(self) -> str:  # never the values
        return f"<LogMasker of {len(self.values)} values>"

    @classmethod
    def for_job(cls, job_id: str) -> LogMasker | None:
        """The job's masker from its env snapshot (values and secret keys as they were when the
        job was created), or None when its service masks nothing or there is nothing to mask."""
        from jobs.models import Job

        job = (
            Job.objects.select_related("service", "env_snapshot")
            .only("service__mask_secrets", "env_snapshot__data", "env_snapshot__secret_keys")
            .filter(pk=job_id)
            .first()
        )
        if job is None or not job.service.mask_secrets:
            return None
        snapshot = job.env_snapshot
        values = maskable_values(snapshot.values, snapshot.secret_keys or [])
        return cls(values) if values else None

    def contains(self, data: bytes) -> bool:
        """Whether any value occurs in ``data``."""
        if self.substrings:
            return any(value in data for value in self.values)
        return self.pattern.search(data) is not None

    def mask(self, payload: bytes) -> bytes:
        """``payload`` with every value replaced by MASK."""
        return self.pattern.sub(MASK, payload)

    def feed(self, messages: list[Message]) -> list[Message]:
        """The messages to store now, masked; the pieces of an unfinished line are kept back
        (``release`` gives them at the end of the log)."""
        if not messages:
            return messages
        if not self.held and not self.carry:
            # The usual batch: whole lines, none holding a value. Joined without separators, a
            # value straddling two pieces inside the batch is found here too.
            blob = b"".join([payload for _, _, payload in messages])
            if blob.endswith(b"\n"):
                if not self.contains(blob):
                    return messages
                # Whole lines, some with a value: masked in one pass, cut back into messages
                # (a value holds no newline, and each message ends with its only one).
                parts = self.pattern.sub(MASK, blob).split(b"\n")
                if len(parts) == len(messages) + 1 and all(
                    payload.endswith(b"\n") for _, _, payload in messages
                ):
                    return [
                        (ts, stream, part + b"\n")
                        for (ts, stream, _), part in zip(messages, parts, strict=False)
                    ]
        out: list[Message] = []
        for message in messages:
            stream, payload = message[1], message[2]
            if self.held and self.held[0][1] != stream:
                out.extend(self.release())
            if not payload.endswith(b"\n"):
                self.held.append(message)
                self.held_bytes += len(payload)
                if self.held_bytes > HOLD_MAX_BYTES:
                    out.extend(self.release())
                continue
            if self.held:
                pieces, self.held, self.held_bytes = [*self.held, message], [], 0
                out.extend(self._mask_pieces(pieces, self.carry.pop(stream, b"")))
            elif stream in self.carry:
                out.extend(self._mask_pieces([message], self.carry.pop(stream)))
            elif self.contains(payload):
                out.append((message[0], stream, self.mask(payload)))
            else:
                out.append(message)
        return out

    def release(self) -> list[Message]:
        """The held pieces, masked, before the line is whole (the end of the log, the other
        stream, too many held bytes); their end is kept to mask the rest of a value that
        straddles it, should the line go on."""
        if not self.held:
            return []
        pieces, self.held, self.held_bytes = self.held, [], 0
        stream = pieces[0][1]
        carry = self.carry.pop(stream, b"")
        tail = (carry + b"".join([p for _, _, p in pieces]))[-self.carry_size :]
        if self.carry_size:
            self.carry[stream] = tail
        return self._mask_pieces(pieces, carry)

    def _mask_pieces(self, pieces: list[Message], carry: bytes) -> list[Message]:
        """Mask consecutive pieces of one line as one text: a value straddling two pieces is
        masked in the piece where it starts (and cut from the next); one starting in ``carry``
        (already stored) puts the mask at the start of the first piece."""
        raws = [payload for _, _, payload in pieces]
        joined = carry + b"".join(raws)
        if not self.contains(joined):
            return pieces
        base = len(carry)
        spans = [
            (m.start() - base, m.end() - base)
            for m in self.pattern.finditer(joined)
            if m.end() > base
        ]
        out: list[Message] = []
        offset = 0
        index = 0
        for number, (ts, stream, raw) in enumerate(pieces):
            end = offset + len(raw)
            parts: list[bytes] = []
            pos = offset
            while index < len(spans) and spans[index][0] < end:
                start, stop = spans[index]
                if start >= offset:
                    parts.append(raw[pos - offset : start - offset])
                    parts.append(MASK)
                elif number == 0:
                    parts.append(MASK)  # the value began in what was already stored
                if stop <= end:
                    pos = stop
                    index += 1
                else:
                    pos = end
                    break
            parts.append(raw[pos - offset :])
            out.append((ts, stream, b"".join(parts)))
            offset = end
        return out

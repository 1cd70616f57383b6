"""Reading a container's json-file log across Docker's rotation (``max-size``/``max-file``).

When the file reaches ``max-size``, Docker closes it, renames ``path.{i}`` to ``path.{i+1}`` (the
piece past ``max-file`` is removed), renames ``path`` to ``path.1`` and opens a new ``path``. A file
that is open survives being renamed or removed, so ``LogFiles`` opens every newer piece as soon as
it sees it (``scan``: one ``stat`` when nothing rotated) and holds it until read: rotation never
takes a piece from under a reader that saw it. A piece is complete once a newer one exists (Docker
closed it before renaming it), so the reader moves on at its end.

Pieces are known by the inode of an open file, which stays unique while the file is held; the
newest piece held is found again in a listing of the names, and every name in front of it is a
newer piece, in order. A listing counts only when no rotation happened while it was made (the
inode of ``path`` is the same before and after).

If the reader falls behind by a whole ``max-file`` of pieces (a database far slower than the job's
output, or no worker following for a while), pieces it never saw are gone: ``gaps`` counts the
times that may have happened, and a warning says so.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import BinaryIO

from jobs.logs.parse import JsonFileParser

logger = logging.getLogger(__name__)

LISTING_ATTEMPTS = 5
FAST_WRITE = 100 * 1024 * 1024  # bytes a second: about the most Docker's json-file takes here


class LogFiles:
    """The pieces of one container's json-file log, read oldest first."""

    def __init__(self, path: str, pieces: int = 1, piece_bytes: int = 0) -> None:
        self.path = path
        self.pieces = max(1, pieces)
        self.piece_bytes = piece_bytes  # Docker's max-size (0: unknown)
        self.current: BinaryIO | None = None
        self.newer: deque[BinaryIO] = deque()
        self.gaps = 0

    # -- opening -----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every name a piece may have, newest first: ``path``, ``path.1``, …"""
        return [self.path] + [f"{self.path}.{i}" for i in range(1, self.pieces)]

    def open(self, since_ns: int = 0) -> None:
        """Hold every piece there is and start in the one holding ``since_ns`` (the oldest piece
        when 0): the last piece whose first message is not after it."""
        listing = self._listing()
        if listing is None:  # rotating right now, or no file yet: the plain path will do
            listing = [open(self.path, "rb")]  # noqa: SIM115 - held until read
        pieces = list(reversed(listing))  # oldest first
        start = 0
        if since_ns:
            for index, piece in enumerate(pieces):
                first = first_timestamp(piece)
                if first is not None and first <= since_ns:
                    start = index
        for piece in pieces[:start]:
            piece.close()
        self.current = pieces[start]
        self.newer = deque(pieces[start + 1 :])

    def scan(self) -> None:
        """Open the pieces that appeared since the last scan (cheap when none did)."""
        if self.pieces < 2 or self.current is None:
            return
        newest = self.newer[-1] if self.newer else self.current
        newest_inode = os.fstat(newest.fileno()).st_ino
        try:
            if os.stat(self.path).st_ino == newest_inode:
                return
        except FileNotFoundError:
            return  # between Docker's rename and its new file: look again on the next scan
        listing = self._listing()
        if listing is None:
            return
        inodes = [os.fstat(piece.fileno()).st_ino for piece in listing]
        if newest_inode in inodes:
            fresh = listing[: inodes.index(newest_inode)]
        else:
            # The newest piece we hold was already rotated away: every listed piece is newer,
            # and pieces between it and them may be gone.
            fresh = listing
            self.gaps += 1
            logger.warning(
                "%s rotated faster than it was read: some lines may be missing", self.path
            )
        for piece in listing:
            if piece not in fresh:
                piece.close()
        self.newer.extend(reversed(fresh))

    def _listing(self) -> list[BinaryIO] | None:
        """Every piece there is, newest first, opened, as of one moment (None if Docker kept
        rotating or the log is missing)."""
        for _attempt in range(LISTING_ATTEMPTS):
            try:
                before = os.stat(self.path).st_ino
            except FileNotFoundError:
                continue
            opened: list[BinaryIO] = []
            for name in self.names():
                try:
                    opened.append(open(name, "rb"))  # noqa: SIM115 - held until read
                except FileNotFoundError:
                    continue
            try:
                after = os.stat(self.path).st_ino
            except FileNotFoundError:
                after = None
            if opened and after == before and os.fstat(opened[0].fileno()).st_ino == before:
                return opened
            for piece in opened:
                piece.close()
        return None

    def look_within(self, longest: float) -> float:
        """Seconds a reader may wait at the end of the current piece before it looks again:
        ``longest``, or less for pieces so small that a job printing flat out (Docker writes a
        json-file at most about FAST_WRITE bytes a second) could rotate every one of them away
        meanwhile."""
        if self.pieces < 2 or not self.piece_bytes:
            return longest
        window = (self.pieces - 1) * self.piece_bytes / FAST_WRITE
        return max(0.002, min(longest, window / 4))

    # -- reading -----------------------------------------------------------------------------------

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the current piece (b"" at its end)."""
        assert self.current is not None
        return self.current.read(size)

    def advance(self) -> bool:
        """At the end of the current piece: go on with the next one if there is one (the
        current one is then complete). Call ``scan`` first."""
        if not self.newer:
            return False
        assert self.current is not None
        self.current.close()
        self.current = self.newer.popleft()
        return True

    def close(self) -> None:
        for piece in [self.current, *self.newer]:
            if piece is not None:
                piece.close()
        self.current = None
        self.newer.clear()


def first_timestamp(piece: BinaryIO) -> int | None:
    """The time of a piece's first message (None while it has none), read without moving."""
    line = os.pread(piece.fileno(), JsonFileParser.MAX_LINE, 0).split(b"\n", 1)
    if len(line) < 2:
        return None
    messages = JsonFileParser().feed(line[0] + b"\n")
    return messages[0][0] if messages else None

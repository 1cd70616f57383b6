"""Waiting for a job and tailing its log, with no gap and no duplicate, across outages.

The log is read with Render's time-window paging, forward from the last line printed
(``startTime`` = the page's ``nextStartTime``, one microsecond past it: a job's timestamps are
unique and increasing, and a batch of lines commits in order, so a line stored later is never
older than one already read). Line ids (``job-…-<seq>``) are remembered as well: a line at or
below the last printed sequence number is never printed twice. Every request is retried for
``retry_for`` seconds (a dropped connection, a restarting server answering 502/503 or nothing),
and the next one starts from the same cursor.

Ctrl-C: the SIGINT handler raises ``KeyboardInterrupt`` at once, except while a page of lines is
being printed and its cursor moved (a critical section); then it is raised right after, so
a tail that goes on after the interrupt (``--wait`` then "cancel") neither repeats nor skips.
SIGTERM does the same with ``Terminated`` (a ``KeyboardInterrupt``).
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta

from oneoff_cli.client import Api
from oneoff_cli.exitcodes import CliError
from oneoff_cli.output import Spinner, parse_time, write_lines

FINISHED = ("succeeded", "failed", "canceled")
PAGE = 100
# Waiting: the first 2 s poll often (a short job's end is seen within 25 ms plus a request),
# then less: at most about 80 + 30 + 100 requests in the first 30 s, then one a second.
SCHEDULE = ((2.0, 0.025), (5.0, 0.1), (30.0, 0.25))
LATER = 1.0
# Tailing reads the log and the job's status on each pass: half as often.
TAIL_SCHEDULE = ((5.0, 0.1), (30.0, 0.5))


class Terminated(KeyboardInterrupt):
    """SIGTERM while waiting."""


def is_finished(job: dict) -> bool:
    return job.get("status") in FINISHED


class LogCursor:
    """Where the next forward page starts, and the last line printed."""

    def __init__(self, start: datetime, job_id: str = ""):
        self.start = start.isoformat()
        self.prefix = f"{job_id}-"
        self.last_seq: int | None = None
        self.last_id: str | None = None

    def fresh(self, entries: list[dict]) -> list[dict]:
        out = []
        for entry in entries:
            seq = self._seq(entry.get("id", ""))
            if entry.get("id") == self.last_id:
                continue
            if seq is not None and self.last_seq is not None and seq <= self.last_seq:
                continue
            out.append(entry)
        return out

    def moved(self, entries: list[dict], next_start: str) -> None:
        if entries:
            self.start = next_start
            self.last_id = entries[-1].get("id")
            seq = self._seq(self.last_id or "")
            if seq is not None:
                self.last_seq = seq

    def _seq(self, line_id: str) -> int | None:
        """Oneoff's line ids are ``<job id>-<seq>``; other ids (Render's) count only as ids."""
        tail = line_id.removeprefix(self.prefix)
        return int(tail) if line_id.startswith(self.prefix) and tail.isdigit() else None


def log_start(job: dict, since: datetime | None = None) -> datetime:
    """A window start before the job's first line (its runner's clock may differ a little)."""
    if since is not None:
        return since
    created = parse_time(job.get("createdAt"))
    if created is None:
        raise CliError("the job has no createdAt", 70)
    return created - timedelta(hours=1)


class Watch:
    def __init__(
        self,
        api: Api,
        service_id: str,
        job: dict,
        *,
        owner_id: str | None = None,
        tail: bool = False,
        follow_until_end: bool = True,
        since: datetime | None = None,
        retry_for: float = 600.0,
        spinner: Spinner | None = None,
        notes=None,
        as_json: bool = False,
    ):
        self.api = api
        self.service_id = service_id
        self.job = job
        self.owner_id = owner_id
        self.tail = tail
        self.follow_until_end = follow_until_end
        self.cursor = LogCursor(log_start(job, since), job["id"])
        self.retry_for = retry_for
        self.spinner = spinner
        self.notes = notes  # callable(str) for the client's own messages, or None
        self.as_json = as_json
        self.started = time.monotonic()
        self.critical = False
        self.interrupted: type[KeyboardInterrupt] | None = None
        self.outage = False

    # Ctrl-C around critical sections.

    def _on_signal(self, signum, frame) -> None:
        error = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        if self.critical:
            self.interrupted = self.interrupted or error
            return
        raise error

    def _enter(self) -> None:
        self.critical = True

    def _leave(self) -> None:
        self.critical = False
        if self.interrupted is not None:
            error, self.interrupted = self.interrupted, None
            raise error

    # Requests.

    def _retrying(self, error) -> None:
        if not self.outage and self.notes is not None:
            if self.spinner:
                self.spinner.clear()
            self.notes(f"{error.message}; retrying")
        self.outage = True

    def _recovered(self) -> None:
        if self.outage and self.notes is not None:
            self.notes("the API answers again")
        self.outage = False

    def refresh(self) -> dict:
        self.job = self.api.get(
            f"/services/{self.service_id}/jobs/{self.job['id']}",
            retry_for=self.retry_for,
            on_retry=self._retrying,
        )
        self._recovered()
        return self.job

    def drain(self) -> int:
        """Print every stored line past the cursor; the number printed."""
        printed = 0
        while True:
            page = self.api.get(
                "/logs",
                params={
                    "ownerId": self.owner_id,
                    "resource": self.job["id"],
                    "direction": "forward",
                    "startTime": self.cursor.start,
                    "limit": PAGE,
                },
                retry_for=self.retry_for,
                on_retry=self._retrying,
            )
            self._recovered()
            entries = page.get("logs") or []
            fresh = self.cursor.fresh(entries)
            if fresh and self.spinner:
                self.spinner.clear()
            self._enter()
            try:
                write_lines(fresh, self.as_json)
                self.cursor.moved(entries, page.get("nextStartTime") or self.cursor.start)
            finally:
                self._leave()
            printed += len(fresh)
            if not page.get("hasMore") or not entries:
                return printed

    def _interval(self, idle: int) -> float:
        elapsed = time.monotonic() - self.started
        for until, every in TAIL_SCHEDULE if self.tail else SCHEDULE:
            if elapsed < until:
                return every
        return LATER

    def run(self) -> dict:
        """Until the job ends (its last line printed when tailing); the finished job."""
        previous = signal.signal(signal.SIGINT, self._on_signal)
        previous_term = signal.signal(signal.SIGTERM, self._on_signal)
        try:
            idle = 0
            while True:
                finished = is_finished(self.job)
                if self.tail:
                    printed = self.drain()
                    idle = 0 if printed else idle + 1
                if finished or not self.follow_until_end:
                    if self.spinner:
                        self.spinner.clear()
                    return self.job
                if self.spinner and self.job.get("status") == "pending":
                    self.spinner.tick(f"{self.job['id']} pending")
                elif self.spinner:
                    self.spinner.clear()
                time.sleep(self._interval(idle))
                self.refresh()
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, previous_term)

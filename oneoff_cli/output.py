"""Human output: aligned tables, colour only on a terminal (and never with ``NO_COLOR``), a
spinner on stderr while a job is pending, and log lines written to stdout or stderr as stored."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from typing import Any

import click

STATUS_COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "canceled": "magenta",
    "running": "cyan",
    "pending": "yellow",
}


class Style:
    def __init__(self, colour: bool | None):
        on_tty = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self.colour = on_tty if colour is None else colour

    def status(self, value: str) -> str:
        if not self.colour:
            return value
        return click.style(value, fg=STATUS_COLOURS.get(value))

    def bold(self, value: str) -> str:
        return click.style(value, bold=True) if self.colour else value


def table(rows: list[list[str]], header: list[str], style: Style) -> None:
    """Columns padded to their widest cell (by visible width; colour codes are not counted)."""
    widths = [len(h) for h in header]
    plain = [[click.unstyle(cell) for cell in row] for row in rows]
    for row in plain:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(style.bold(h.ljust(widths[i])) for i, h in enumerate(header)).rstrip()]
    for row, bare in zip(rows, plain, strict=True):
        cells = [cell + " " * (widths[i] - len(bare[i])) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    click.echo("\n".join(lines), color=style.colour)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def duration(job: dict) -> str:
    start = parse_time(job.get("startedAt"))
    end = parse_time(job.get("finishedAt"))
    if not start:
        return ""
    if not end:
        from datetime import UTC

        end = datetime.now(UTC)
    return human_seconds((end - start).total_seconds())


def human_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def short_time(value: str | None) -> str:
    stamp = parse_time(value)
    return stamp.astimezone().strftime("%Y-%m-%d %H:%M:%S") if stamp else ""


def describe_end(job: dict) -> str:
    """How a job ended, in the dashboard's words."""
    reason = job.get("reason") or {}
    if "oomKilled" in reason:
        oom = reason["oomKilled"]
        limit = oom.get("memoryLimit") if isinstance(oom, dict) else None
        return f"out of memory (limit {limit})" if limit else "out of memory"
    if "timedOutSeconds" in reason:
        return f"timed out after {reason['timedOutSeconds']} s"
    if "canceledBy" in reason:
        return f"canceled by {reason['canceledBy']}"
    if "startError" in reason:
        return f"could not start: {reason['startError']}"
    if reason.get("evicted"):
        return f"lost: {reason.get('evictionReason') or 'the runner lost the container'}"
    if job.get("exitCode") is not None:
        return f"exit code {job['exitCode']}"
    return job.get("status", "")


class Spinner:
    """``| / - \\`` and a message on stderr, redrawn on each ``tick``; only on a terminal."""

    FRAMES = "|/-\\"

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.frame = 0
        self.shown = False
        self.started = time.monotonic()

    def tick(self, message: str) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        text = f"\r{self.FRAMES[self.frame % 4]} {message} ({elapsed:.0f}s)\x1b[K"
        self.frame += 1
        sys.stderr.write(text)
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def write_lines(entries: list[dict], as_json: bool = False) -> None:
    """Log entries as the job printed them: ``level`` ``error`` (stderr) to our stderr, the rest
    to our stdout, each message and a newline, bytes as stored (UTF-8)."""
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    if as_json:
        out.write(b"".join(json.dumps(e).encode() + b"\n" for e in entries))
        out.flush()
        return
    for entry in entries:
        data = entry["message"].encode("utf-8", "replace") + b"\n"
        if level_of(entry) == "error":
            sys.stdout.flush()  # keep what went before in order on a shared terminal
            out.flush()
            err.write(data)
            err.flush()
        else:
            out.write(data)
    out.flush()


def level_of(entry: dict) -> str:
    for label in entry.get("labels") or ():
        if label.get("name") == "level":
            return str(label.get("value"))
    return "info"

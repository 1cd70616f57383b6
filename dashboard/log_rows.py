"""The rows the log viewer renders (``render_log_lines``): a log's lines as light named tuples,
each with its time as ``stamp``.

On PostgreSQL ``stamp`` is text the database wrote, the line's time in UTC to the millisecond
(``2026-02-01T00:00:00.123``), so a page of 1,000 lines makes no datetime in Python: loading,
converting and formatting 1,000 ``timestamptz`` values was about a fifth of the job page's time
(issue 20). Elsewhere (the embedded SQLite) it is the datetime, formatted by the renderer.
"""

from collections import namedtuple

from django.db import connections
from django.db.models import CharField, F, Func, QuerySet


class UtcMillis(Func):
    """A ``timestamptz`` as UTC ISO 8601 text to the millisecond, without the zone: what
    ``isoformat(timespec="milliseconds")`` writes of the UTC datetime (``MS`` truncates the
    microseconds as it does)."""

    template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"
    output_field = CharField()


def stamped(lines: QuerySet, *fields: str) -> QuerySet:
    """``lines`` (job or build log lines) as named rows of ``seq``, ``stamp`` and ``fields``."""
    stamp: Func | F = F("timestamp")
    if connections[lines.db].vendor == "postgresql":
        stamp = UtcMillis("timestamp")
    return lines.annotate(stamp=stamp).values_list("seq", "stamp", *fields, named=True)


# A job's log line as the viewer reads it (``stamped(…, "stream", "text")``).
JobLogRow = namedtuple("JobLogRow", ["seq", "stamp", "stream", "text"])

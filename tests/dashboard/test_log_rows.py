"""The log viewer's rows (dashboard.log_rows): the time PostgreSQL writes as text is the one
Python wrote from the datetime, so a page's lines are the same HTML either way."""

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

from django.db import connection

from dashboard.log_rows import stamped
from dashboard.templatetags.dashboard import render_log_lines
from jobs.models import JobLogLine

E = "\x1b"
TEXTS = [
    "plain",
    "<img src=x onerror=alert(1)>",
    "a & b \"quoted\" 'single'",
    f"{E}[1;31mred <b>{E}[0m & {E}[38;5;208morange",
    "bell \x07 and \u202eevil",
    "",
]
# Milliseconds truncated as isoformat truncates them (.999999 is .999, not the next second),
# whole seconds, another zone, a new year.
TIMES = [
    datetime(2026, 2, 1, 12, 30, 45, 999999, tzinfo=UTC),
    datetime(2026, 2, 1, 12, 30, 46, tzinfo=UTC),
    datetime(2026, 2, 1, 1, 2, 3, 4567, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 12, 31, 23, 59, 59, 999500, tzinfo=UTC),
    datetime(2027, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
    datetime(1999, 7, 4, 8, 9, 10, 11000, tzinfo=UTC),
]


def as_datetimes(rows):
    """The rows as they were before the database wrote the time: with the datetime."""
    return [
        SimpleNamespace(seq=r.seq, stamp=line.timestamp, stream=r.stream, text=r.text)
        for r, line in zip(rows, JobLogLine.objects.order_by("seq"), strict=True)
    ]


def test_the_database_writes_the_time_python_wrote(make_job):
    job = make_job()
    JobLogLine.objects.bulk_create(
        JobLogLine(job=job, seq=i, timestamp=at, stream=1 + i % 2, text=text)
        for i, (at, text) in enumerate(zip(TIMES, TEXTS, strict=True))
    )
    rows = list(stamped(JobLogLine.objects.filter(job=job), "stream", "text").order_by("seq"))
    if connection.vendor == "postgresql":  # elsewhere the renderer formats the datetime
        assert [row.stamp for row in rows] == [
            at.astimezone(UTC).isoformat(timespec="milliseconds")[:23] for at in TIMES
        ]
        assert rows[0].stamp == "2026-02-01T12:30:45.999"
    for query in ("", "red", "<img"):
        html = render_log_lines(rows, query, 1)
        assert html == render_log_lines(as_datetimes(rows), query, 1)
    html = render_log_lines(rows, "", 1)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert (
        '<li class="line err" id="L2" data-seq="1"><a class="ln" href="#L2" aria-label="line 2">'
        '2</a><time datetime="2026-02-01T12:30:46.000Z" title="2026-02-01 12:30:46.000 UTC" '
        'data-format="clock">12:30:46</time><span class="visually-hidden">stderr: </span>'
        '<span class="msg">&lt;img src=x onerror=alert(1)&gt;</span></li>'
    ) in html
    assert '<span class="a-f1 a-bo">red &lt;b&gt;</span>' in html
    assert '<span class="ctl">\\x07</span>' in html

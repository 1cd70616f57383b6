"""Display helpers for the dashboard: times, durations, money, job reasons and log lines.

Log lines are rendered by a small Python function rather than a template loop: a page shows up
to 1,000 of them and the template engine would spend most of the page's time there.
"""

import functools
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django import template
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeString, mark_safe

from dashboard import ansi, splice
from jobs import reasons
from jobs.reasons import human_seconds

register = template.Library()


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


@register.simple_tag
def ts(dt: datetime | None, fmt: str = "datetime") -> str:
    """A ``<time>`` element in UTC that static/js/app.js rewrites into the reader's time zone;
    the UTC value stays in the title (shown on hover)."""
    if dt is None:
        return mark_safe('<span class="muted">—</span>')
    utc = _utc(dt)
    iso = utc.isoformat(timespec="milliseconds")  # YYYY-MM-DDTHH:MM:SS.mmm+00:00
    if utc.year >= 1000:
        # strftime("%Y-%m-%d %H:%M:%S UTC") sliced from the ISO text (strftime is about half
        # of this function's time); strftime writes a year before 1000 without its zeros.
        text = f"{iso[:10]} {iso[11:19]} UTC"
    else:
        text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    # The two times are digits, separators and "UTC", with nothing to escape: only ``fmt`` is
    # escaped, as format_html would (a Jobs page writes 25 of these; format_html was a third of
    # a row's time).
    return mark_safe(  # noqa: S308 - see above
        f'<time datetime="{iso[:-6]}Z" title="{text}" data-format="{_format_attr(fmt)}">'
        f"{text}</time>"
    )


def _format_attr(fmt) -> str:
    """``conditional_escape(fmt)``: a plain string (the templates' literal formats) escaped
    once a process, without conditional_escape's checks for lazy strings on every call."""
    return _escaped(fmt) if type(fmt) is str else conditional_escape(fmt)


@functools.lru_cache(maxsize=64)
def _escaped(text: str) -> str:
    return escape(text)


@register.filter
def duration(job) -> str:
    return human_seconds(job.duration_seconds)


@register.filter
def seconds(value) -> str:
    return human_seconds(value)


@register.filter
def money(value) -> str:
    """Dollars; sub-cent amounts keep their significant digits ($0.000027)."""
    if value is None:
        return "—"
    value = Decimal(value)
    if value == 0:
        return "$0"
    if value >= Decimal("0.01"):
        return f"${value:,.2f}"
    return f"${value.quantize(Decimal('0.000001')).normalize():f}"


@register.filter
def reason_text(job) -> str:
    """How a job ended, in plain words."""
    return reasons.describe(job)


# A line's opening tag up to its number, and its stream's label up to its text, by stream (a
# build's lines have none: stdout).
_LINE_OPEN = {1: '<li class="line out" id="L', 2: '<li class="line err" id="L'}
_LINE_LABEL = {
    1: '<span class="visually-hidden">stdout: </span><span class="msg">',
    2: '<span class="visually-hidden">stderr: </span><span class="msg">',
}


def highlight(text: str, query: str | None) -> str:
    """Escape ``text`` and wrap each case-insensitive match of ``query`` in ``<mark>``. Matches
    are found in the raw text and every piece is escaped on its own, so a query can never match
    inside an entity the escaping produced."""
    if not query:
        return escape(text)
    parts: list[str] = []
    last = 0
    for match in re.finditer(re.escape(query), text, flags=re.IGNORECASE):
        parts.append(escape(text[last : match.start()]))
        parts.append(f"<mark>{escape(match.group())}</mark>")
        last = match.end()
    parts.append(escape(text[last:]))
    return "".join(parts)


def render_log_lines(lines, query: str | None = None, base: int = 0) -> SafeString:
    """``<li>`` elements for log lines (rows with seq, stamp, stream and text: see
    ``dashboard.log_rows``; a build's lines have no stream).

    ``stamp`` is the line's time, as the UTC ISO text to the millisecond PostgreSQL wrote or as
    a datetime. ``base`` is added to a line's seq for its number and its permalink (``#L5``): a
    job's log numbers its lines from 1 (its seqs start at 0). The text goes through
    ``dashboard.ansi`` (colours, visible control characters, everything escaped).

    Written for speed (a page holds 1,000 lines): a page of usual lines (no ESC, no control
    character, no search) is escaped in one call (``ansi.escape_page``), the time is sliced from
    one string for the clock and the title, and the markup that depends only on the stream is
    written once."""
    lines = lines if isinstance(lines, list) else list(lines)
    base = int(base or 0)
    texts = [line.text for line in lines]
    escaped = None if query else ansi.escape_page(texts)
    if escaped is None:
        escaped = [ansi.render(text, query) for text in texts]
    out: list[str] = []
    append = out.append
    for line, text in zip(lines, escaped, strict=True):
        stream = getattr(line, "stream", 1)
        iso = line.stamp
        if not isinstance(iso, str):
            iso = iso.astimezone(UTC).isoformat(timespec="milliseconds")
        seq = line.seq
        n = str(seq + base)
        append(
            f'{_LINE_OPEN.get(stream, _LINE_OPEN[1])}{n}" data-seq="{seq}">'
            f'<a class="ln" href="#L{n}" aria-label="line {n}">{n}</a>'
            f'<time datetime="{iso[:23]}Z" title="{iso[:10]} {iso[11:23]} UTC" '
            f'data-format="clock">{iso[11:19]}</time>'
            f"{_LINE_LABEL.get(stream, _LINE_LABEL[1])}{text}</span></li>"
        )
    return mark_safe("".join(out))  # noqa: S308 - every piece of user text is escaped above


@register.simple_tag(takes_context=True)
def log_lines(context, lines, query=None, base=0):
    """The lines' HTML; on a page rendered by ``dashboard.splice.render``, a placeholder the
    response replaces with it (the template engine never copies the 1,000 lines)."""
    html = render_log_lines(lines, query, base)
    splicer = context.get(splice.KEY)
    return splicer.hold(html) if splicer is not None else html


@register.filter
def add_days(dt: datetime | None, days: int) -> datetime | None:
    return None if dt is None else dt + timedelta(days=days)


@register.filter
def short_id(value: str | None, length: int = 12) -> str:
    if not value:
        return ""
    return value.removeprefix("sha256:")[:length]


@register.filter
def since(end: datetime | None, start: datetime | None) -> str:
    """The time from ``start`` to ``end``, in words."""
    if end is None or start is None:
        return "—"
    return human_seconds(max(0.0, (end - start).total_seconds()))

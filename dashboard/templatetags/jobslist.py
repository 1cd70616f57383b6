"""Display helpers of the Jobs list: the short exit-or-reason chip of a row, who ran a job, and
the row itself."""

import html
from collections.abc import Callable
from urllib.parse import quote

from django import template
from django.template import Context, defaultfilters
from django.template.defaulttags import CsrfTokenNode
from django.urls import reverse
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import SafeString, mark_safe

from dashboard.templatetags.dashboard import duration, money, ts
from jobs import reasons

register = template.Library()


@register.filter
def end_chip(job) -> str:
    """A few words on how a finished job ended ("exit 3", "OOM", "timed out"); the full
    sentence (``reasons.describe``) goes in the chip's title. "" for an unfinished job."""
    if not job.is_finished:
        return ""
    reason = job.reason or {}
    if "oomKilled" in reason:
        return "OOM"
    if "timedOutSeconds" in reason:
        return "timed out"
    if "canceledBy" in reason:
        return "canceled"
    if "startError" in reason:
        return "start error"
    if reason.get("evicted"):
        return "lost"
    if "nonZeroExit" in reason:
        return f"exit {reason['nonZeroExit']}"
    if job.exit_code is not None:
        return f"exit {job.exit_code}"
    return ""


@register.filter
def chip_count(count: int) -> str:
    """A chip's count: counting stops at COUNT_CAP."""
    from dashboard.forms.jobs import COUNT_CAP

    return f"{COUNT_CAP}+" if count >= COUNT_CAP else str(count)


@register.filter
def end_text(job) -> str:
    return reasons.describe(job)


@register.filter
def run_by(job) -> str:
    """Who ran the job: the member's email (else username); "API" for a job made without one."""
    user = job.created_by
    if user is None:
        return "API"
    return user.email or user.username


@register.simple_tag(takes_context=True)
def job_row(context: Context, job) -> SafeString:
    """A row of the Jobs list (``jobs/list.html#row``), written by ``render_job_row``."""
    can_write = bool(context.get("can_write"))
    csrf = CsrfTokenNode().render(context) if can_write else ""
    return render_job_row(job, context["service"], can_write=can_write, csrf=csrf)


@register.simple_tag(takes_context=True)
def job_rows(context: Context, jobs) -> SafeString:
    """What ``{% for job in jobs %}{% partial row %}{% endfor %}`` writes, without the loop's
    and the partial's cost for each of the 25 rows (about 40 µs a row: a third of a row)."""
    can_write = bool(context.get("can_write"))
    csrf = CsrfTokenNode().render(context) if can_write else ""
    service = context["service"]
    url_of = job_urls(service)
    return mark_safe(  # noqa: S308 - rows of render_job_row
        "".join(
            f"\n\n{render_job_row(job, service, can_write=can_write, csrf=csrf, url_of=url_of)}\n"
            for job in jobs
        )
    )


def job_urls(service) -> Callable[[str], str]:
    """``reverse("job", args=[service.id, job_id])`` for each job of a page, from the service's
    Jobs URL reversed once (a reverse is 30 to 50 µs; a page has 25 rows), the id quoted as
    ``reverse`` quotes it."""
    prefix = reverse("jobs", args=[service.id])
    return lambda job_id: f"{prefix}{quote(job_id, safe=RFC3986_SUBDELIMS + '/~:@')}/"


def truncatechars(text: str, length: int) -> str:
    """The ``truncatechars`` filter, without its lazy Truncator for the usual text that fits
    (the filter counts characters but combining ones: no text longer than ``length`` fits)."""
    return text if len(text) <= length else defaultfilters.truncatechars(text, length)


def _escape(value) -> str:
    """``conditional_escape`` (what ``{{ }}`` does) without its checks for lazy strings on every
    call, which cost more than the escaping (a row escapes about 15 values)."""
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


def render_job_row(
    job, service, *, can_write: bool, csrf: str, url_of: Callable[[str], str] | None = None
) -> SafeString:
    """The ``<tr>`` of one job, the HTML the template's loop wrote (whitespace included).

    A page holds 25 rows of about 45 variables, filters, tags and two forms each: through the
    template engine they were half the page's rendering (about 4.5 ms of 9); as format strings
    they are about 0.9 ms (issue 20). Every value from the job is escaped as ``{{ }}`` escapes
    it (``_escape``); tests/dashboard/test_job_row_html.py renders the template's row beside
    this one for jobs of every kind, so the two cannot drift."""
    e = _escape
    url = e((url_of or job_urls(service))(job.id))
    pk = e(job.id)
    status = e(job.status)
    finished = job.is_finished
    chip = end_chip(job)
    status_cell = f'<span class="badge {status}">{status}</span>'
    if chip:
        status_cell += (
            f' <span class="end-chip {status}" title="{e(end_text(job))}">{e(chip)}</span>'
        )
    status_cell += "\n    "
    if job.status == "pending":
        place = getattr(job, "queue_position", None)
        queue = f", #{e(place)} in queue" if place else ""
        status_cell += (
            f'<span class="pending-note" title="{e(end_text(job))}">waiting for a runner{queue}, '
            f"since {ts(job.start_waits_since, 'relative')}</span>"
        )
    command = job.start_command
    who = e(run_by(job))
    actions = ""
    if can_write:
        actions = (
            f'\n    <form method="post" action="{url}rerun/" hx-post="{url}rerun/" '
            f'hx-target="#job-rows" hx-swap="afterbegin" hx-confirm="Run '
            f'“{e(truncatechars(command, 60))}” again with the latest build?">{csrf}'
            f'<button type="submit" class="small" aria-label="Rerun {pk}">Rerun</button></form>\n'
            f'    <a class="button small" href="?rerun={pk}" aria-label="Rerun with changes">'
            f"Edit…</a>\n    "
        )
        if not finished:
            actions += (
                f'\n    <form method="post" action="{url}cancel/" hx-post="{url}cancel/" '
                f'hx-target="#row-{pk}" hx-swap="outerHTML" hx-confirm="Cancel job {pk}?">{csrf}'
                f'<button type="submit" class="small danger" aria-label="Cancel {pk}">Cancel'
                f"</button></form>\n    "
            )
        actions += "\n    "
    return mark_safe(  # noqa: S308 - every value from the job is escaped above
        f'<tr id="row-{pk}" class="job {status}" data-href="{url}" '
        f'data-created="{e(job.created_at.isoformat())}"'
        f'{"" if finished else " data-unfinished"} tabindex="0">\n'
        f'  <td class="status">{status_cell}</td>\n'
        f'  <td><a href="{url}" tabindex="-1" title="{pk}"><code>{pk}</code></a></td>\n'
        f'  <td class="cmd"><code title="{e(command)}">{e(truncatechars(command, 90))}</code>'
        "</td>\n"
        f'  <td class="hide-sm">{e(job.plan.name)}</td>\n'
        f'  <td class="hide-sm runby" title="{who}">{who}</td>\n'
        f'  <td class="created">{ts(job.created_at, "relative")}</td>\n'
        f'  <td class="num">{e(duration(job))}</td>\n'
        f'  <td class="num hide-sm">{e(money(job.cost))}</td>\n'
        f'  <td class="actions">\n    {actions}\n  </td>\n'
        f"</tr>"
    )

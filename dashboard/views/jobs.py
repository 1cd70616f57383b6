"""The Jobs pages: the list with its Run job form, a job's page and its log viewer."""

from datetime import timedelta

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from audit.trail import actor_of
from dashboard import splice
from dashboard.access import get_service, signed_in
from dashboard.forms.jobs import (
    LOG_PAGE,
    TZ_COOKIE,
    JobFilterForm,
    ListHeadForm,
    LogQueryForm,
    RunJobForm,
    rows_by_id,
)
from dashboard.http import HtmxHttpRequest
from dashboard.log_rows import JobLogRow, stamped
from dashboard.system_lines import end_lines, start_lines
from dashboard.views import bad_request, is_partial
from jobs.launch import cancel_job, create_job
from jobs.logs.read import line_batches, search_job
from jobs.logs.search import SearchTooSlow
from jobs.models import Job, JobLogLine, JobStatus, JobUsage
from jobs.usage import MiB, usage_hint
from services import limits
from services.access import WRITE, job_of
from services.errors import Invalid, OverBudget, Refused
from services.prepared import Prepared

# Keep polling a finished job's log a little while, in case its last lines land just after its
# final status.
LOG_SETTLE = timedelta(seconds=3)


# How many pending jobs of a service the list numbers (a queue position past it says "200+").
QUEUE_COUNTED = 200


def poll_seconds() -> float:
    return max(0.25, float(settings.JOBS_LIST_POLL_SECONDS))


def with_queue_positions(service, jobs: list[Job]) -> list[Job]:
    """Give each pending job of ``jobs`` its place among the service's pending jobs (1 is the
    next to start) as ``queue_position``: one query, whatever the page."""
    if not any(job.status == JobStatus.PENDING for job in jobs):
        return jobs
    waiting = list(
        Job.objects.filter(service=service, status=JobStatus.PENDING)
        .order_by("created_at", "id")
        .values_list("id", flat=True)[:QUEUE_COUNTED]
    )
    places = {pk: place for place, pk in enumerate(waiting, 1)}
    for job in jobs:
        if job.status == JobStatus.PENDING:
            setattr(job, "queue_position", places.get(job.id))  # noqa: B010 - not a model field
    return jobs


def chips(counts: dict[str, int]) -> list[tuple[str, str, int]]:
    """The status chips: value, label and how many jobs each would show."""
    return [(value, str(label), counts[value]) for value, label in JobStatus.choices]


def filter_form(request, service, data=None) -> JobFilterForm:
    return JobFilterForm(
        request.GET if data is None else data,
        service=service,
        default_tz=request.COOKIES.get(TZ_COOKIE),
    )


def _list_context(service, filters, run_form=None, rerun_of=None) -> dict:
    jobs, next_cursor = filters.page()
    with_queue_positions(service, jobs)
    # A service that has jobs has had a successful build; ask only when the list is empty.
    has_build = bool(jobs) or service.builds.filter(status="succeeded").exists()
    counts = filters.counts()
    return {
        "service": service,
        "filters": filters,
        "jobs": jobs,
        "next_cursor": next_cursor,
        "has_build": has_build,
        "run_form": run_form or RunJobForm(service=service),
        "rerun_of": rerun_of,
        "statuses": chips(counts),
        "selected": filters.cleaned_data.get("status") or [],
        "tz": filters.cleaned_data.get("tz") or "UTC",
        "poll_ms": int(poll_seconds() * 1000),
        "tab": "jobs",
    }


def _rerun_form(request, service) -> tuple[RunJobForm | None, Job | None]:
    """``?rerun=<job id>``: the run form filled in with that job's command, plan and timeout
    ("rerun with changes"); None without it (or for a viewer)."""
    job_id = request.GET.get("rerun")
    if not job_id or not request.membership.can_write:
        return None, None
    original = job_of(service, job_id)
    initial = {
        "start_command": original.start_command,
        "plan": original.plan_id,
        "timeout_seconds": original.timeout_seconds,
        "rerun_of": original.id,
    }
    form = RunJobForm(service=service, initial=initial)
    form.fields["start_command"].widget.attrs["autofocus"] = True
    return form, original


@signed_in
@require_GET
def job_list(request: HtmxHttpRequest, service_id: str) -> HttpResponse:
    service, request.membership = get_service(request.user, service_id)
    filters = filter_form(request, service)
    if not filters.is_valid():
        return bad_request(request, filters)
    run_form, rerun_of = _rerun_form(request, service)
    context = _list_context(service, filters, run_form=run_form, rerun_of=rerun_of)
    template = "jobs/list.html"
    if is_partial(request):
        template += "#rows" if filters.cleaned_data["cursor"] else "#jobs"
        context["oob"] = True  # the chips and "Clear filters" come along
    return render(request, template, context)


@signed_in
@require_GET
def job_list_head(request: HtmxHttpRequest, service_id: str) -> HttpResponse:
    """The Jobs list's one poll: the jobs created after the newest row the page shows
    (``newest``) that match its filters, the unfinished rows it shows (``ids``) as they are now,
    and the counts on the status chips. One request per interval, whatever the page holds."""
    service, request.membership = get_service(request.user, service_id)
    filters = filter_form(request, service)
    head = ListHeadForm(request.GET, service=service)
    if not filters.is_valid():
        return bad_request(request, filters)
    if not head.is_valid():
        return bad_request(request, head)
    new = filters.newer_than(head.cleaned_data["newest"])
    seen = {job.id for job in new}
    wanted = [pk for pk in head.cleaned_data["ids"] if pk not in seen]
    updated = rows_by_id(service, wanted)
    with_queue_positions(service, new + updated)
    counts = filters.counts()
    context = {
        "service": service,
        "new": new,
        "updated": updated,
        "statuses": chips(counts),
    }
    return render(request, "jobs/list.html#head", context)


def count_job_creation(request: HtmxHttpRequest, service) -> None:
    """Count a run in the member's and the workspace's job-creation buckets, the API's own
    (``services.limits``): past a limit, ``Limited`` is a 429 the page shows as an alert."""
    assert request.user.is_authenticated  # @signed_in
    limits.enforce("job_create", user=request.user, workspace=service.workspace)


@signed_in
@require_POST
def run_job(request: HtmxHttpRequest, service_id: str) -> HttpResponse:
    service, request.membership = get_service(request.user, service_id, WRITE)
    form = RunJobForm(request.POST, service=service)
    job = None
    if form.is_valid():
        rerun_of = form.cleaned_data["rerun_of"]
        original = job_of(service, rerun_of) if rerun_of else None
        count_job_creation(request, service)
        try:
            job = create_job(
                service,
                form.cleaned_data["start_command"],
                form.cleaned_data["plan"],
                user=request.user,
                timeout_seconds=form.cleaned_data["timeout_seconds"],
                env_overrides=form.cleaned_data["env_overrides"],
                rerun_of=original,
                actor=actor_of(request),
            )
        except (Invalid, Refused, OverBudget) as error:
            form.add_launch_error(error)
    if job is None:
        if not is_partial(request):
            filters = filter_form(request, service, data={})
            filters.is_valid()
            context = _list_context(service, filters, run_form=form)
            return render(request, "jobs/list.html", context, status=400)
        context = {"service": service, "run_form": form}
        return render(request, "jobs/list.html#run_form", context, status=400)
    if not is_partial(request):
        return redirect("job", service.id, job.id)
    context = {
        "service": service,
        "run_form": RunJobForm(service=service),
        "job": job,
        "created": job,
    }
    return render(request, "jobs/list.html#run_result", context)


@signed_in
@require_GET
def job_row(request: HtmxHttpRequest, service_id: str, job_id: str) -> HttpResponse:
    service, request.membership = get_service(request.user, service_id)
    job = job_of(service, job_id)
    return render(request, "jobs/list.html#row", {"service": service, "job": job})


def _viewer(service, job) -> dict:
    """Whose log the shared viewer (templates/dashboard/_log_viewer.html) shows, and where it
    asks for more lines."""
    return {
        "log_of": job,
        "log_noun": "job",
        "line_base": LINE_BASE,
        "rich": True,  # find, toggles and raw (static/js/logviewer.js)
        "logs_url": reverse("job_logs", args=[service.id, job.id]),
    }


# A job's line seqs start at 0 and its lines are numbered from 1: line N (``#LN``) is seq N - 1.
LINE_BASE = 1

CHART_WIDTH, CHART_HEIGHT = 600, 120  # the usage chart's drawing units (it scales to the page)


def _polyline(xy: list[tuple[float, float]]) -> str:
    """SVG polyline points from (0..1, 0..1) pairs, y up; numbers only, nothing to escape."""
    return " ".join(f"{x * CHART_WIDTH:.1f},{(1 - min(y, 1.0)) * CHART_HEIGHT:.1f}" for x, y in xy)


def usage_chart(job) -> dict | None:
    """The job page's memory and CPU over time against its plan's limits: two polylines in
    0..1 of the limit (a line at the top is at the limit), and the words beside them. None
    while nothing was read."""
    if job.peak_memory_bytes is None:
        return None
    limit = job.plan.memory_mb * MiB
    cores = float(job.plan.cpu) or 1.0
    usage = JobUsage.objects.filter(job=job).values_list("points", flat=True).first() or []
    chart: dict = {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "peak_mb": round(job.peak_memory_bytes / MiB),
        "limit_mb": job.plan.memory_mb,
        "peak_percent": round(100 * job.peak_memory_bytes / limit),
        "cpu_seconds": job.cpu_seconds,
        "cores": job.plan.cpu.normalize(),
        "hint": usage_hint(job),
        "memory": "",
        "cpu": "",
    }
    start = job.started_at.timestamp() if job.started_at else (usage[0][0] if usage else 0)
    end = max(
        job.finished_at.timestamp() if job.finished_at else timezone.now().timestamp(),
        usage[-1][0] if usage else start,
    )
    span = max(end - start, 1e-6)
    memory, cpu = [], []
    previous = None  # CPU is a rate between two points (see jobs.usage.cpu_values)
    for at, used, seconds in usage:
        x = max(0.0, min(1.0, (at - start) / span))
        memory.append((x, used / limit))
        if previous is not None and at > previous[0]:
            cpu.append((x, max(0.0, seconds - previous[1]) / (at - previous[0]) / cores))
        previous = (at, seconds)
    chart["memory"] = _polyline(memory)
    chart["cpu"] = _polyline(cpu)
    return chart


def _detail_context(service, job, q="", line=None) -> dict:
    context = {"service": service, "job": job, "q": q, "tab": "jobs", **_viewer(service, job)}
    context["usage"] = usage_chart(job)
    context.update(_retention(service, job))
    if job.logs_purged_at:
        context.update(lines=[], has_earlier=False, poll=False)
        return context
    if q:
        lines, problem = _matches(job, q, None)
        context.update(
            lines=lines[:SEARCH_PAGE],
            more_matches=len(lines) > SEARCH_PAGE,
            poll=False,
            search_problem=problem,
        )
        return context
    if line is not None:
        around = _around(job, line - LINE_BASE)
        if around is not None:
            context.update(around)
            context["system_start"] = [] if around["has_earlier"] else start_lines(job)
            context["system_end"] = [] if around["has_later"] else end_lines(job)
            return context
    lines = list(map(JobLogRow._make, _LATEST.rows(job_id=job.pk)))
    lines.reverse()
    has_earlier = len(lines) > LOG_PAGE
    lines = lines[1:] if has_earlier else lines
    context.update(
        lines=lines,
        has_earlier=has_earlier,
        poll=_keeps_polling(job),
        last_seq=lines[-1].seq if lines else None,
        system_start=[] if has_earlier else start_lines(job),
        system_end=end_lines(job),
    )
    return context


def _retention(service, job) -> dict:
    """Until when the job's logs are kept: counted from its end, or from its creation while it
    has not ended (the date moves when it ends: the status poll brings it again)."""
    days = service.workspace.log_retention_days
    return {
        "retention_days": days,
        "logs_expire_at": (job.finished_at or job.created_at) + timedelta(days=days),
    }


def _around(job, seq: int) -> dict | None:
    """The page of lines around ``seq`` (half a page before it), for a permalink to a line the
    latest page does not hold; None when that line is in the latest page (or there is none)."""
    latest = list(
        _lines(job).order_by("-seq").values_list("seq", flat=True)[LOG_PAGE - 1 : LOG_PAGE]
    )
    if not latest or seq >= latest[0]:
        return None  # the latest page holds it: the usual page, live tail and all
    start = max(0, seq - LOG_PAGE // 2)
    page = list(_lines(job).filter(seq__gte=start).order_by("seq")[: LOG_PAGE + 1])
    has_later = len(page) > LOG_PAGE
    page = page[:LOG_PAGE]
    return {
        "lines": page,
        "has_earlier": bool(page) and _lines(job).filter(seq__lt=page[0].seq).exists(),
        "has_later": has_later,
        "poll": not has_later and _keeps_polling(job),
        "last_seq": page[-1].seq if page else None,
    }


# Matches of a search per page ("More matches" asks for the next): fewer than a page of the log,
# as each may be far from the last (a search of a 1,000,000-line log: benchmarked in bench/).
SEARCH_PAGE = 200


def _matches(job, q: str, after: int | None) -> tuple[list, str | None]:
    """The first page (and one more) of the lines of ``job`` after ``after`` matching ``q``
    (``GET /v1/logs`` ``text`` syntax; chunked big logs answer from their index), and what
    stopped the search, if something did."""
    try:
        seqs = search_job(job, q, after=after, limit=SEARCH_PAGE + 1)
    except SearchTooSlow:
        seconds = settings.LOGS_QUERY_TIMEOUT
        return [], f"The search was stopped after {seconds:g} s: try a more specific one."
    except Invalid as exc:  # an expression RE2 accepts that PostgreSQL cannot run
        return [], exc.message
    return list(_lines(job).filter(seq__in=seqs).order_by("seq")), None


def _lines(job):
    """A job's log lines as light rows (a page shows a thousand of them)."""
    return _lines_of(job.pk)


def _lines_of(job_id: str):
    return stamped(JobLogLine.objects.filter(job_id=job_id), "stream", "text")


# The job page's latest lines (and one more, to know there are earlier ones), newest first:
# compiled once (services.prepared), as plain rows (issue 20).
_LATEST = Prepared(lambda shape, *, job_id: _lines_of(job_id).order_by("-seq")[: LOG_PAGE + 1])


def _keeps_polling(job) -> bool:
    if not job.is_finished:
        return True
    return job.finished_at is not None and timezone.now() - job.finished_at < LOG_SETTLE


@signed_in
@require_GET
def job_detail(request: HtmxHttpRequest, service_id: str, job_id: str) -> HttpResponse:
    service, request.membership = get_service(request.user, service_id)
    job = job_of(service, job_id)
    form = LogQueryForm(request.GET)
    if not form.is_valid():
        return bad_request(request, form)
    q = form.cleaned_data["q"] if form.cleaned_data["q"].strip() else ""
    context = _detail_context(service, job, q, form.cleaned_data["line"])
    template = "jobs/detail.html"
    if is_partial(request):
        template += "#log_viewer" if request.htmx.target == "log-viewer" else "#summary"
    return splice.render(request, template, context)


@signed_in
@require_GET
def job_logs(request: HtmxHttpRequest, service_id: str, job_id: str) -> HttpResponse:
    """The log viewer's cursor requests: the tail after ``after`` (with the poller again while the
    job runs), a page before ``before`` ("load earlier"), or more search matches."""
    service, request.membership = get_service(request.user, service_id)
    job = job_of(service, job_id)
    form = LogQueryForm(request.GET)
    if not form.is_valid():
        return bad_request(request, form)
    data = form.cleaned_data
    lines = _lines(job)
    context = {"service": service, "job": job, **_viewer(service, job)}
    if job.logs_purged_at:
        lines = lines.none()
    if data["before"] is not None:
        page = list(lines.filter(seq__lt=data["before"]).order_by("-seq")[: LOG_PAGE + 1])
        context.update(has_earlier=len(page) > LOG_PAGE, lines=page[:LOG_PAGE][::-1])
        return splice.render(request, "dashboard/_log_viewer.html#earlier", context)
    # Sequence numbers start at 0; without ``after`` the request starts from the first line.
    after = data["after"]
    if after is not None:
        lines = lines.filter(seq__gt=after)
    if data["later"] and not data["q"].strip():
        page = list(lines.order_by("seq")[: LOG_PAGE + 1])
        has_later = len(page) > LOG_PAGE
        page = page[:LOG_PAGE]
        context.update(
            lines=page,
            has_later=has_later,
            poll=not has_later and _keeps_polling(job),
            last_seq=page[-1].seq if page else after,
            system_end=[] if has_later else end_lines(job),
        )
        return splice.render(request, "dashboard/_log_viewer.html#later", context)
    if data["q"].strip():
        page, problem = ([], None) if job.logs_purged_at else _matches(job, data["q"], after)
        context["search_problem"] = problem
        context.update(lines=page[:SEARCH_PAGE], more_matches=len(page) > SEARCH_PAGE, q=data["q"])
        return splice.render(request, "dashboard/_log_viewer.html#matches", context)
    page = list(lines.order_by("seq")[: LOG_PAGE + 1])
    more = len(page) > LOG_PAGE
    page = page[:LOG_PAGE]
    context.update(
        lines=page,
        last_seq=page[-1].seq if page else after,
        poll=more or _keeps_polling(job),
        catch_up=more,
        status_changed=bool(data["status"]) and data["status"] != job.status,
        # A pending job's summary comes along with every poll: why it waits (a runner, a slot,
        # capacity) changes without its status changing.
        refresh_summary=job.status == JobStatus.PENDING,
    )
    if context["status_changed"]:
        context["usage"] = usage_chart(job)  # the summary comes along: with what the job used
        context.update(_retention(service, job))  # and the retention date, now from its end
        if not more:
            context["system_end"] = end_lines(job)
    return splice.render(request, "jobs/detail.html#tail", context)


@signed_in
@require_GET
def job_log_download(
    request: HtmxHttpRequest, service_id: str, job_id: str
) -> HttpResponse | StreamingHttpResponse:
    """The whole log as text, streamed in chunks by sequence number (constant memory)."""
    service, _ = get_service(request.user, service_id)
    job = job_of(service, job_id)
    if job.logs_purged_at:
        return HttpResponse(
            f"The logs of {job.id} expired on {job.logs_purged_at:%Y-%m-%d}.\n",
            status=410,
            content_type="text/plain; charset=utf-8",
        )
    raw = request.GET.get("view") == "raw"  # the raw view: the lines' text, in the browser
    text = _raw_text(job.pk) if raw else _log_text(job.pk)
    response = StreamingHttpResponse(text, content_type="text/plain; charset=utf-8")
    kind = "inline" if raw else "attachment"
    response["Content-Disposition"] = f'{kind}; filename="{job.id}.log"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _raw_text(job_pk: str, chunk: int = 5000):
    for rows in line_batches(job_pk, chunk):
        yield "".join(f"{text}\n" for _, _, _, text in rows)


def _log_text(job_pk: str, chunk: int = 5000):
    names = {1: "stdout", 2: "stderr"}
    for rows in line_batches(job_pk, chunk):
        yield "".join(
            f"{ts.isoformat(timespec='microseconds').replace('+00:00', 'Z')}\t"
            f"{names.get(stream, 'stdout')}\t{text}\n"
            for _, ts, stream, text in rows
        )


@signed_in
@require_POST
def cancel(request: HtmxHttpRequest, service_id: str, job_id: str) -> HttpResponse:
    service, request.membership = get_service(request.user, service_id, WRITE)
    cancel_job(job_of(service, job_id), user=request.user, actor=actor_of(request))
    job = job_of(service, job_id)
    if not is_partial(request):
        return redirect("job", service.id, job.id)
    context = {"service": service, "job": job}
    if request.htmx.target == f"row-{job.id}":
        return render(request, "jobs/list.html#row", context)
    context["usage"] = usage_chart(job)
    return render(request, "jobs/detail.html#summary", context)


@signed_in
@require_POST
def rerun(request: HtmxHttpRequest, service_id: str, job_id: str) -> HttpResponse:
    """Run the same command on the same plan again, with the job's own timeout: on latest (the
    default) with the service's latest build and env and the job's env var overrides with their
    values; exactly (``exact=1``) with the job's own build and env snapshot."""
    service, request.membership = get_service(request.user, service_id, WRITE)
    original = job_of(service, job_id)
    exact = request.POST.get("exact") == "1"
    count_job_creation(request, service)
    job = create_job(
        service,
        original.start_command,
        original.plan_id,
        user=request.user,
        timeout_seconds=original.timeout_seconds,
        env_overrides=() if exact else original.override_values().items(),
        rerun_of=original,
        exact=exact,
        actor=actor_of(request),
    )
    url = reverse("job", args=[service.id, job.id])
    if not is_partial(request):
        return redirect(url)
    if request.htmx.target == "job-rows":
        job = job_of(service, job.id)
        with_queue_positions(service, [job])
        context = {"service": service, "job": job, "rerun_of": original}
        return render(request, "jobs/list.html#rerun_result", context)
    return HttpResponseClientRedirect(url)

"""A service's builds: the list with its Build now button, and a build's page with its log."""

from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from audit.trail import actor_of, record_build
from dashboard import splice
from dashboard.access import get_service, signed_in
from dashboard.forms.jobs import LOG_PAGE, LogQueryForm
from dashboard.http import HtmxHttpRequest
from dashboard.log_rows import stamped
from dashboard.views import bad_request, is_partial
from services.access import WRITE, build_of
from services.builds import queue as builds
from services.builds.queue import request_build
from services.models import BuildLogLine, DeployTrigger


@signed_in
@require_GET
def build_list(request: HtmxHttpRequest, service_id: str) -> HttpResponse:
    service, request.membership = get_service(request.user, service_id)
    builds = service.builds.select_related("created_by").order_by("-created_at", "-id")[:50]
    context = {"service": service, "builds": builds, "tab": "builds"}
    return render(request, "services/builds.html", context)


@signed_in
@require_POST
def trigger_build(request: HtmxHttpRequest, service_id: str) -> HttpResponse:
    service, _ = get_service(request.user, service_id, WRITE)
    with transaction.atomic():
        build = request_build(service, user=request.user, trigger=DeployTrigger.MANUAL)
        record_build(actor_of(request), build)
    return redirect("build", service.id, build.id)


def _build_lines(build):
    return stamped(BuildLogLine.objects.filter(build=build), "text")


def _viewer(service, build) -> dict:
    """Whose log the shared viewer (templates/dashboard/_log_viewer.html) shows, and where it
    asks for more lines."""
    return {
        "log_of": build,
        "log_noun": "build",
        "logs_url": reverse("build_logs", args=[service.id, build.id]),
    }


def _build_log_context(build, lines, after: int | None, context: dict) -> dict:
    lines = lines[:LOG_PAGE]
    context.update(lines=lines, last_seq=lines[-1].seq if lines else after)
    context["poll"] = not build.is_finished
    return context


@signed_in
@require_GET
def build_detail(request: HtmxHttpRequest, service_id: str, build_id: str) -> HttpResponse:
    service, request.membership = get_service(request.user, service_id)
    build = build_of(service, build_id)
    lines = list(_build_lines(build).order_by("-seq")[: LOG_PAGE + 1])
    lines.reverse()
    has_earlier = len(lines) > LOG_PAGE
    lines = lines[1:] if has_earlier else lines
    context = {"service": service, "build": build, "has_earlier": has_earlier, "tab": "builds"}
    context.update(_viewer(service, build))
    _build_log_context(build, lines, None, context)
    template = "services/build.html"
    if is_partial(request):
        template += "#summary"
    return splice.render(request, template, context)


@signed_in
@require_GET
def build_logs(request: HtmxHttpRequest, service_id: str, build_id: str) -> HttpResponse:
    service, request.membership = get_service(request.user, service_id)
    build = build_of(service, build_id)
    form = LogQueryForm(request.GET)
    if not form.is_valid():
        return bad_request(request, form)
    data = form.cleaned_data
    lines = _build_lines(build)
    context = {"service": service, "build": build, **_viewer(service, build)}
    if data["before"] is not None:
        page = list(lines.filter(seq__lt=data["before"]).order_by("-seq")[: LOG_PAGE + 1])
        context.update(has_earlier=len(page) > LOG_PAGE, lines=page[:LOG_PAGE][::-1])
        return splice.render(request, "dashboard/_log_viewer.html#earlier", context)
    after = data["after"]
    if after is not None:
        lines = lines.filter(seq__gt=after)
    page = list(lines.order_by("seq")[: LOG_PAGE + 1])
    _build_log_context(build, page, after, context)
    context["poll"] = context["poll"] or len(page) > LOG_PAGE
    context["status_changed"] = bool(data["status"]) and data["status"] != build.status
    return splice.render(request, "services/build.html#tail", context)


@signed_in
@require_POST
def cancel_build(request: HtmxHttpRequest, service_id: str, build_id: str) -> HttpResponse:
    service, _ = get_service(request.user, service_id, WRITE)
    build = build_of(service, build_id)
    builds.cancel_build(build, user=request.user)
    if is_partial(request):
        return HttpResponseClientRedirect(reverse("build", args=[service.id, build.id]))
    return redirect("build", service.id, build.id)

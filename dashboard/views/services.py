"""Workspace and service pages: home, services list, builds, env vars, API keys, usage."""

from django.db.models import Count, OuterRef, Subquery, Sum
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from dashboard.access import get_service, get_workspace, signed_in
from dashboard.forms.jobs import LOG_PAGE, LogQueryForm
from dashboard.forms.services import ApiKeyForm, EnvVarForm, MonthForm
from jobs.models import Job
from services import builds
from services.access import ADMIN, WRITE, build_of
from services.builds import request_build
from services.models import ApiKey, Build, BuildLogLine, EnvVar, Membership, Workspace

SESSION_WORKSPACE = "workspace"


def page_context(request, membership: Membership, **extra) -> dict:
    """What every page's frame needs: the workspace, the reader's role, the switcher's list."""
    workspace = membership.workspace
    if request.session.get(SESSION_WORKSPACE) != workspace.id:
        request.session[SESSION_WORKSPACE] = workspace.id
    return {
        "workspace": workspace,
        "membership": membership,
        "can_write": membership.can_write,
        "is_admin": membership.is_admin,
        "workspaces": Workspace.objects.for_user(request.user).order_by("name"),
        **extra,
    }


def _partial(request) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def _bad_request(form) -> HttpResponseBadRequest:
    lines = [f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()]
    return HttpResponseBadRequest("Bad request. " + "; ".join(lines), content_type="text/plain")


@signed_in
@require_GET
def home(request):
    """The services list of the workspace the reader used last (or their first one)."""
    workspaces = Workspace.objects.for_user(request.user).order_by("name")
    current = workspaces.filter(pk=request.session.get(SESSION_WORKSPACE)).first()
    current = current or workspaces.first()
    if current is None:
        return render(request, "services/no_workspace.html")
    return redirect("services", current.id)


@signed_in
@require_GET
def services_list(request, workspace_id: str):
    workspace, membership = get_workspace(request.user, workspace_id)
    latest_build = Build.objects.filter(service=OuterRef("pk")).order_by("-created_at", "-id")
    last_job = Job.objects.filter(service=OuterRef("pk")).order_by("-created_at", "-id")
    services = (
        workspace.services.select_related("plan")
        .annotate(
            build_id=Subquery(latest_build.values("id")[:1]),
            build_status=Subquery(latest_build.values("status")[:1]),
            build_at=Subquery(latest_build.values("created_at")[:1]),
            job_id=Subquery(last_job.values("id")[:1]),
            job_status=Subquery(last_job.values("status")[:1]),
            job_at=Subquery(last_job.values("created_at")[:1]),
        )
        .order_by("name")
    )
    context = page_context(request, membership, services=services, tab="services")
    return render(request, "services/list.html", context)


@signed_in
@require_GET
def service_home(request, service_id: str):
    service, _ = get_service(request.user, service_id)
    return redirect("jobs", service.id)


# Builds


@signed_in
@require_GET
def build_list(request, service_id: str):
    service, membership = get_service(request.user, service_id)
    builds = service.builds.select_related("created_by").order_by("-created_at", "-id")[:50]
    context = page_context(request, membership, service=service, builds=builds, tab="builds")
    return render(request, "services/builds.html", context)


@signed_in
@require_POST
def trigger_build(request, service_id: str):
    service, _ = get_service(request.user, service_id, WRITE)
    build = request_build(service, user=request.user)
    return redirect("build", service.id, build.id)


def _build_lines(build):
    return BuildLogLine.objects.filter(build=build).values_list(
        "seq", "timestamp", "text", named=True
    )


def _build_log_context(build, lines, after: int | None, context: dict) -> dict:
    lines = lines[:LOG_PAGE]
    context.update(lines=lines, last_seq=lines[-1].seq if lines else after)
    context["poll"] = not build.is_finished
    return context


@signed_in
@require_GET
def build_detail(request, service_id: str, build_id: str):
    service, membership = get_service(request.user, service_id)
    build = build_of(service, build_id)
    lines = list(_build_lines(build).order_by("-seq")[: LOG_PAGE + 1])
    lines.reverse()
    has_earlier = len(lines) > LOG_PAGE
    lines = lines[1:] if has_earlier else lines
    context = page_context(
        request, membership, service=service, build=build, has_earlier=has_earlier, tab="builds"
    )
    _build_log_context(build, lines, None, context)
    template = "services/build.html"
    if _partial(request):
        template += "#summary"
    return render(request, template, context)


@signed_in
@require_GET
def build_logs(request, service_id: str, build_id: str):
    service, membership = get_service(request.user, service_id)
    build = build_of(service, build_id)
    form = LogQueryForm(request.GET)
    if not form.is_valid():
        return _bad_request(form)
    data = form.cleaned_data
    lines = _build_lines(build)
    context = page_context(request, membership, service=service, build=build)
    if data["before"] is not None:
        page = list(lines.filter(seq__lt=data["before"]).order_by("-seq")[: LOG_PAGE + 1])
        context.update(has_earlier=len(page) > LOG_PAGE, lines=page[:LOG_PAGE][::-1])
        return render(request, "services/build.html#earlier", context)
    after = data["after"]
    if after is not None:
        lines = lines.filter(seq__gt=after)
    page = list(lines.order_by("seq")[: LOG_PAGE + 1])
    _build_log_context(build, page, after, context)
    context["poll"] = context["poll"] or len(page) > LOG_PAGE
    context["status_changed"] = bool(data["status"]) and data["status"] != build.status
    return render(request, "services/build.html#tail", context)


@signed_in
@require_POST
def cancel_build(request, service_id: str, build_id: str):
    service, _ = get_service(request.user, service_id, WRITE)
    build = build_of(service, build_id)
    builds.cancel_build(build, user=request.user)
    if _partial(request):
        return HttpResponseClientRedirect(reverse("build", args=[service.id, build.id]))
    return redirect("build", service.id, build.id)


# Env vars


def _env_context(request, service, membership, form=None):
    return page_context(
        request,
        membership,
        service=service,
        env_vars=service.env_vars.order_by("key").only("key", "updated_at", "service_id"),
        form=form or EnvVarForm(),
        tab="env",
    )


@signed_in
@require_http_methods(["GET", "POST"])
def env_vars(request, service_id: str):
    """Names for every member; values, and changes, for admins only."""
    need = ADMIN if request.method == "POST" else "read"
    service, membership = get_service(request.user, service_id, need)
    if request.method == "POST":
        form = EnvVarForm(request.POST)
        if not form.is_valid():
            context = _env_context(request, service, membership, form)
            return render(request, "services/env.html", context, status=400)
        form.save(service)
        return redirect("env_vars", service.id)
    return render(request, "services/env.html", _env_context(request, service, membership))


def _env_var(service, key: str) -> EnvVar:
    var = service.env_vars.filter(key=key).first()
    if var is None:
        raise Http404("No such env var")
    return var


@signed_in
@require_GET
def reveal_env_var(request, service_id: str, key: str):
    service, membership = get_service(request.user, service_id, ADMIN)
    var = _env_var(service, key)
    shown = request.GET.get("hide") != "1"
    context = page_context(request, membership, service=service, var=var, shown=shown)
    return render(request, "services/env.html#value", context)


@signed_in
@require_POST
def delete_env_var(request, service_id: str, key: str):
    service, _ = get_service(request.user, service_id, ADMIN)
    _env_var(service, key).delete()
    if _partial(request):
        return HttpResponse("")
    return redirect("env_vars", service.id)


# API keys


def _keys_context(request, workspace, membership, form=None, **extra):
    keys = ApiKey.objects.filter(workspace=workspace).select_related("user")
    if not membership.is_admin:
        keys = keys.filter(user=request.user)
    return page_context(
        request, membership, keys=keys, form=form or ApiKeyForm(), tab="api_keys", **extra
    )


@signed_in
@require_http_methods(["GET", "POST"])
def api_keys(request, workspace_id: str):
    """Every member may hold keys of their own; a viewer's keys are read-only. Admins see and
    revoke everyone's keys in the workspace."""
    workspace, membership = get_workspace(request.user, workspace_id)
    if request.method == "GET":
        return render(
            request, "services/api_keys.html", _keys_context(request, workspace, membership)
        )
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        context = _keys_context(request, workspace, membership, form)
        return render(request, "services/api_keys.html", context, status=400)
    read_only = form.cleaned_data["read_only"] or not membership.can_write
    key, secret = ApiKey.issue(
        request.user, workspace, name=form.cleaned_data["name"], read_only=read_only
    )
    context = _keys_context(request, workspace, membership, new_key=key, secret=secret)
    response = render(request, "services/api_keys.html", context)
    response["Cache-Control"] = "no-store"
    return response


@signed_in
@require_POST
def revoke_api_key(request, workspace_id: str, key_id: int):
    workspace, membership = get_workspace(request.user, workspace_id)
    keys = ApiKey.objects.filter(workspace=workspace, pk=key_id)
    if not membership.is_admin:
        keys = keys.filter(user=request.user)
    key = keys.first()
    if key is None:
        raise Http404("No such API key")
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    return redirect("api_keys", workspace.id)


# Usage


@signed_in
@require_GET
def usage(request, workspace_id: str):
    """Billed seconds and cost per service and plan for the jobs that finished in a month."""
    workspace, membership = get_workspace(request.user, workspace_id)
    form = MonthForm(request.GET)
    if not form.is_valid():
        return _bad_request(form)
    start, end = form.bounds()
    rows = list(
        Job.objects.filter(workspace=workspace, finished_at__gte=start, finished_at__lt=end)
        .values("service_id", "service__name", "plan_id", "plan__name")
        .annotate(jobs=Count("id"), seconds=Sum("billed_seconds"), cost=Sum("cost"))
        .order_by("service__name", "plan_id")
    )
    by_service: dict[str, dict] = {}
    for row in rows:
        row["seconds"] = row["seconds"] or 0
        row["cost"] = row["cost"] or 0
        entry = by_service.setdefault(
            row["service_id"],
            {"name": row["service__name"], "id": row["service_id"], "cost": 0, "seconds": 0},
        )
        entry["cost"] += row["cost"]
        entry["seconds"] += row["seconds"]
    biggest = max((s["cost"] for s in by_service.values()), default=0)
    for entry in by_service.values():
        entry["percent"] = round(entry["cost"] / biggest * 100, 1) if biggest else 0
    month = form.cleaned_data["month"]
    context = page_context(
        request,
        membership,
        rows=rows,
        services=sorted(by_service.values(), key=lambda s: -s["cost"]),
        total_cost=sum(r["cost"] for r in rows),
        total_seconds=sum(r["seconds"] for r in rows),
        month=month,
        month_value=f"{month:%Y-%m}",
        tab="usage",
    )
    return render(request, "services/usage.html", context)

"""The log stream settings page (workspace admins): the default destination, the per-service
settings, the forwarder's counters, and a button that sends a test line.

The workspace comes from ``?workspace=<id>`` (the dashboard's links carry it), else the one the
reader used last. Outsiders get a 404, members who are not admins a 403.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from audit.trail import actor_of
from dashboard.access import get_workspace
from dashboard.context_processors import SESSION_WORKSPACE
from dashboard.forms.logstreams import ServiceStreamForm, StreamForm
from dashboard.http import HtmxHttpRequest
from dashboard.views import is_partial
from logstreams import streams as logstreams
from logstreams.models import ServiceLogStream
from services.access import ADMIN, service_in
from services.models import Service, Workspace

TEMPLATE = "logstreams/settings.html"


def _workspace(request: HtmxHttpRequest):
    """The workspace this page is about; the reader's membership stays on the request for the
    page frame."""
    workspace_id = request.GET.get("workspace") or request.session.get(SESSION_WORKSPACE)
    if not workspace_id:
        first = Workspace.objects.for_user(request.user).order_by("name").first()
        if first is None:
            raise Http404("No workspace")
        workspace_id = first.id
    workspace, request.membership = get_workspace(request.user, workspace_id, ADMIN)
    return workspace


def _page_url(workspace) -> str:
    return f"{reverse('log_stream')}?workspace={workspace.id}"


def _service_rows(workspace, forms=None):
    overrides = {
        o.service_id: o for o in ServiceLogStream.objects.filter(service__workspace=workspace)
    }
    rows = []
    for service in Service.objects.filter(workspace=workspace).order_by("name"):
        override = overrides.get(service.id)
        form = (forms or {}).get(service.id) or ServiceStreamForm(
            initial=_service_initial(override), prefix=service.id
        )
        rows.append({"service": service, "override": override, "form": form})
    return rows


def _service_initial(override) -> dict:
    if override is None:
        return {"setting": ServiceStreamForm.DEFAULT}
    if override.setting == "drop":
        return {"setting": ServiceStreamForm.DROP}
    return {"setting": ServiceStreamForm.CUSTOM, "endpoint": override.endpoint}


def _context(workspace, **extra) -> dict:
    stream = logstreams.stream_row(workspace)
    form = extra.pop("form", None) or StreamForm(
        initial={
            "endpoint": stream.endpoint,
            "enabled": stream.enabled,
            "preview": stream.preview,
        }
        if stream.endpoint
        else None
    )
    return {
        "tab": "log_stream",
        "stream": stream,
        "form": form,
        "rows": _service_rows(workspace, extra.pop("service_forms", None)),
        "page_url": _page_url(workspace),
        **extra,
    }


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: HtmxHttpRequest) -> HttpResponse:
    workspace = _workspace(request)
    if request.method == "GET":
        return render(request, TEMPLATE, _context(workspace))
    form = StreamForm(request.POST)
    if form.is_valid() and _saved(form, workspace, actor_of(request)):
        return redirect(_page_url(workspace))
    context = _context(workspace, form=form)
    return render(request, TEMPLATE, context, status=400)


def _saved(form, target, actor) -> bool:
    """Save a valid form; a rule the form cannot check itself (the egress rules, which
    resolve the endpoint) becomes an error on its field. False when it was refused."""
    try:
        form.save(target, actor)
    except logstreams.SettingsError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return False
    return True


@login_required
@require_POST
def delete_stream(request: HtmxHttpRequest) -> HttpResponse:
    workspace = _workspace(request)
    logstreams.delete_owner_stream(workspace, actor=actor_of(request))
    return redirect(_page_url(workspace))


@login_required
@require_POST
def send_test_line(request: HtmxHttpRequest) -> HttpResponse:
    workspace = _workspace(request)
    stream = logstreams.owner_stream(workspace)
    if stream is None:
        result = {"ok": False, "message": "Set a destination first."}
    else:
        error = logstreams.send_test_line(stream.endpoint, stream.token, workspace.id)
        result = {
            "ok": error is None,
            "message": error or f"A test line was delivered to {stream.endpoint}.",
        }
    # The request worked either way (the line was tried): a failure is news, not an error.
    context = _context(workspace, test_result=result)
    if is_partial(request):
        return render(request, f"{TEMPLATE}#test_result", context)
    return render(request, TEMPLATE, context)


@login_required
@require_POST
def service_setting(request: HtmxHttpRequest, service_id: str) -> HttpResponse:
    workspace = _workspace(request)
    service = service_in(workspace, service_id)
    form = ServiceStreamForm(request.POST, prefix=service.id)
    if not form.is_valid() or not _saved(form, service, actor_of(request)):
        context = _context(workspace, service_forms={service.id: form})
        if is_partial(request):
            row = next(r for r in context["rows"] if r["service"].id == service.id)
            return render(request, f"{TEMPLATE}#service_row", {**context, "row": row}, status=400)
        return render(request, TEMPLATE, context, status=400)
    if is_partial(request):
        context = _context(workspace)
        row = next(r for r in context["rows"] if r["service"].id == service.id)
        return render(request, f"{TEMPLATE}#service_row", {**context, "row": row, "saved": True})
    return redirect(_page_url(workspace))

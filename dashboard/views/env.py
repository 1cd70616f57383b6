"""A service's environment page: every member sees the names; admins see, add and delete values."""

from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.trail import actor_of, record
from dashboard.access import get_service, signed_in
from dashboard.forms.services import EnvVarForm
from dashboard.http import HtmxHttpRequest
from dashboard.views import is_partial
from services.access import ADMIN
from services.models import EnvVar


def _env_context(service, form=None) -> dict:
    return {
        "service": service,
        "env_vars": service.env_vars.order_by("key").only(
            "key", "secret", "updated_at", "service_id"
        ),
        "form": form or EnvVarForm(),
        "tab": "env",
    }


@signed_in
@require_http_methods(["GET", "POST"])
def env_vars(request: HtmxHttpRequest, service_id: str) -> HttpResponse:
    """Names for every member; values, and changes, for admins only."""
    need = ADMIN if request.method == "POST" else "read"
    service, request.membership = get_service(request.user, service_id, need)
    if request.method == "POST":
        form = EnvVarForm(request.POST)
        if not form.is_valid():
            return render(request, "services/env.html", _env_context(service, form), status=400)
        with transaction.atomic():
            var = form.save(service)
            _audit(request, service, "env_var.set", var.key)
        return redirect("env_vars", service.id)
    return render(request, "services/env.html", _env_context(service))


def _audit(request: HtmxHttpRequest, service, action: str, key: str) -> None:
    """The env var's name only, never its value."""
    record(
        actor_of(request),
        service.workspace_id,
        action,
        target_type="service",
        target_id=service.id,
        metadata={"key": key},
    )


def _env_var(service, key: str) -> EnvVar:
    var = service.env_vars.filter(key=key).first()
    if var is None:
        raise Http404("No such env var")
    return var


@signed_in
@require_GET
def reveal_env_var(request: HtmxHttpRequest, service_id: str, key: str) -> HttpResponse:
    service, request.membership = get_service(request.user, service_id, ADMIN)
    var = _env_var(service, key)
    shown = request.GET.get("hide") != "1"
    if shown:  # a secret read by a person: Render audits it too (ViewEnvVarValuesEvent)
        _audit(request, service, "env_var.reveal", var.key)
    context = {"service": service, "var": var, "shown": shown}
    return render(request, "services/env.html#value", context)


@signed_in
@require_POST
def delete_env_var(request: HtmxHttpRequest, service_id: str, key: str) -> HttpResponse:
    service, _ = get_service(request.user, service_id, ADMIN)
    with transaction.atomic():
        _env_var(service, key).delete()
        _audit(request, service, "env_var.delete", key)
    if is_partial(request):
        return HttpResponse("")
    return redirect("env_vars", service.id)

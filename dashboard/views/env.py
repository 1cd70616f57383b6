"""A service's environment page: every member sees the names; admins see, add and delete values."""

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

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
        form.save(service)
        return redirect("env_vars", service.id)
    return render(request, "services/env.html", _env_context(service))


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
    context = {"service": service, "var": var, "shown": shown}
    return render(request, "services/env.html#value", context)


@signed_in
@require_POST
def delete_env_var(request: HtmxHttpRequest, service_id: str, key: str) -> HttpResponse:
    service, _ = get_service(request.user, service_id, ADMIN)
    _env_var(service, key).delete()
    if is_partial(request):
        return HttpResponse("")
    return redirect("env_vars", service.id)

"""The limits pages: a service's settings (``maxConcurrentJobs``, log masking) and a
workspace's monthly budget (set on the usage page). Every member reads them; only admins change
them."""

from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from audit.trail import actor_of, record
from dashboard.access import get_service, get_workspace, signed_in
from dashboard.forms.services import BudgetForm, ConcurrencyForm, MaskingForm
from dashboard.http import HtmxHttpRequest
from dashboard.views.usage import usage_context
from jobs import budget
from jobs.runner import set_concurrency_limit
from services.access import ADMIN, READ


@signed_in
@require_http_methods(["GET", "POST"])
def service_settings(request: HtmxHttpRequest, service_id: str) -> HttpResponse:
    need = ADMIN if request.method == "POST" else READ
    service, request.membership = get_service(request.user, service_id, need)
    if request.method == "POST":
        form = ConcurrencyForm(request.POST)
        if form.is_valid():
            with transaction.atomic():
                set_concurrency_limit(service, form.cleaned_data["max_concurrent_jobs"])
                record(
                    actor_of(request),
                    service.workspace_id,
                    "service.update",
                    target_type="service",
                    target_id=service.id,
                    metadata={"name": service.name, "fields": ["max_concurrent_jobs"]},
                )
            return redirect("service_settings", service.id)
        status = 400
    else:
        form = ConcurrencyForm(initial={"max_concurrent_jobs": service.max_concurrent_jobs})
        status = 200
    waiting = service.jobs.filter(status="pending", note__startswith="waiting:").count()
    context = {
        "service": service,
        "form": form,
        "masking_form": MaskingForm(initial={"mask_secrets": service.mask_secrets}),
        "waiting": waiting,
        "tab": "settings",
    }
    return render(request, "services/settings.html", context, status=status)


@signed_in
@require_POST
def service_masking(request: HtmxHttpRequest, service_id: str) -> HttpResponse:
    """Turn the masking of env values in the service's job logs on or off (admins only; a
    service of another workspace is a 404, as every page's)."""
    service, request.membership = get_service(request.user, service_id, ADMIN)
    form = MaskingForm(request.POST)
    form.is_valid()  # a checkbox: absent is off, never invalid
    service.mask_secrets = form.cleaned_data.get("mask_secrets", False)
    service.save(update_fields=["mask_secrets", "updated_at"])
    return redirect("service_settings", service.id)


@signed_in
@require_POST
def set_budget(request: HtmxHttpRequest, workspace_id: str) -> HttpResponse:
    workspace, request.membership = get_workspace(request.user, workspace_id, ADMIN)
    form = BudgetForm(request.POST)
    if not form.is_valid():
        context = usage_context(workspace, budget_form=form)
        return render(request, "services/usage.html", context, status=400)
    budget.set_budget(workspace, form.cleaned_data["monthly_budget"])
    return redirect("usage", workspace.id)

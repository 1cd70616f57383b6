"""The usage page: a workspace's billed seconds and cost by month, and its monthly budget."""

from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.access import get_workspace, signed_in
from dashboard.forms.services import BudgetForm, MonthForm
from dashboard.http import HtmxHttpRequest
from dashboard.views import bad_request
from jobs import budget
from jobs.models import Job


@signed_in
@require_GET
def usage(request: HtmxHttpRequest, workspace_id: str) -> HttpResponse:
    """Billed seconds and cost per service and plan for the jobs that finished in a month."""
    workspace, request.membership = get_workspace(request.user, workspace_id)
    form = MonthForm(request.GET)
    if not form.is_valid():
        return bad_request(request, form)
    return render(request, "services/usage.html", usage_context(workspace, form))


def usage_context(workspace, form: MonthForm | None = None, budget_form=None) -> dict:
    if form is None:
        form = MonthForm({})
        form.is_valid()
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
    return {
        "rows": rows,
        "services": sorted(by_service.values(), key=lambda s: -s["cost"]),
        "total_cost": sum(r["cost"] for r in rows),
        "total_seconds": sum(r["seconds"] for r in rows),
        "month": month,
        "month_value": f"{month:%Y-%m}",
        "tab": "usage",
        **_budget_context(workspace, budget_form),
        "limited_services": _limited_services(workspace),
    }


def _limited_services(workspace) -> list:
    """The workspace's services with a ``maxConcurrentJobs``, with how many of their jobs run and
    how many wait for a slot now."""
    return list(
        workspace.services.filter(max_concurrent_jobs__isnull=False)
        .annotate(
            running=Count("jobs", filter=Q(jobs__status="running")),
            waiting=Count(
                "jobs", filter=Q(jobs__status="pending", jobs__note__startswith="waiting:")
            ),
        )
        .order_by("name")
    )


def _budget_context(workspace, budget_form=None) -> dict:
    """This month's spend against the budget (always the current month, whichever is shown)."""
    spend = budget.spent_this_month(workspace.pk)
    limit = workspace.monthly_budget
    context = {
        "spend": spend,
        "budget_month": budget.month_bounds()[0],
        "budget_form": budget_form or BudgetForm(initial={"monthly_budget": limit}),
    }
    if limit is not None:
        context["budget_left"] = max(0, limit - spend.total)
        context["budget_percent"] = min(100, round(spend.total / limit * 100, 1)) if limit else 100
    return context

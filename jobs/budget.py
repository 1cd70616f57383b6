"""A workspace's monthly budget: what its jobs have cost this calendar month (UTC), and the
check a job create passes under the workspace's row lock.

The month's spend counts:

- finished jobs that finished this month, at their billed cost (the usage page's rule: a job
  counts in the month it finished);
- running jobs at their plan's price for the time they have run so far, rounded up to whole
  seconds as billing does (not for their maximum runtime: with JOB_MAX_RUNTIME's 30 days, one
  job would reserve a month of its plan and a small budget could run nothing);
- pending jobs at one second of their plan, the least a started job is billed: so two creates
  racing for the room of one cannot both pass.

A create is refused (``OverBudget``, the API's 402) when that spend plus the new job's first
second would pass the budget. So a budget stops new jobs; it never stops a running one, and
jobs running when it is reached may take the month's spend past it.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from jobs.models import Job, JobStatus
from services.errors import Invalid, OverBudget
from services.models import Plan, Workspace

MAX_BUDGET = Decimal("9999999999.99")  # the field's 12 digits


def set_budget(workspace: Workspace, value: Decimal | str | int | float | None) -> None:
    """Set a workspace's monthly budget in USD (None: no budget). Whole cents, 0 or more; a
    budget below what is spent already refuses every new job until the next month, and stops
    none that runs."""
    if value is not None:
        try:
            amount = Decimal(str(value).strip())
        except ArithmeticError:
            raise Invalid("monthlyBudget", "must be an amount of USD, e.g. 25 or 12.50") from None
        if not amount.is_finite() or amount < 0 or amount > MAX_BUDGET:
            raise Invalid("monthlyBudget", f"must be between 0 and {MAX_BUDGET} USD")
        if amount != amount.quantize(Decimal("0.01")):
            raise Invalid("monthlyBudget", "must be whole cents (at most 2 decimal places)")
        value = amount.quantize(Decimal("0.01"))
    Workspace.objects.filter(pk=workspace.pk).update(monthly_budget=value)
    workspace.monthly_budget = value


def month_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding ``now``: its first instant and the next month's."""
    now = (now or timezone.now()).astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass(frozen=True)
class Spend:
    finished: Decimal  # jobs that finished this month
    running: Decimal  # running jobs, for their time so far
    pending: Decimal  # pending jobs, one second each

    @property
    def total(self) -> Decimal:
        return self.finished + self.running + self.pending


def spent_this_month(workspace_id: str, now: datetime | None = None) -> Spend:
    now = now or timezone.now()
    start, end = month_bounds(now)
    jobs = Job.objects.filter(workspace_id=workspace_id)
    finished = jobs.filter(finished_at__gte=start, finished_at__lt=end).aggregate(c=Sum("cost"))
    running = Decimal(0)
    for started_at, plan in _unfinished(jobs, JobStatus.RUNNING, "started_at"):
        seconds = max(1, math.ceil((now - (started_at or now)).total_seconds()))
        running += plan.cost_of(seconds)
    pending = sum(
        (plan.cost_of(1) for _, plan in _unfinished(jobs, JobStatus.PENDING, "created_at")),
        Decimal(0),
    )
    return Spend(finished["c"] or Decimal(0), running, pending)


def _unfinished(jobs: QuerySet[Job], status: str, when: str) -> list[tuple[datetime | None, Plan]]:
    plans = {p.pk: p for p in Plan.objects.all()}
    rows = jobs.filter(status=status).values_list(when, "plan_id")
    return [(at, plans[plan_id]) for at, plan_id in rows]


def check(workspace: Workspace, plan: Plan) -> None:
    """``OverBudget`` unless the workspace's budget has room for one more job on ``plan``.
    Call it holding the workspace's row lock (``jobs.launch.create_job`` does), so that two
    creates count each other."""
    budget = workspace.monthly_budget
    if budget is None:
        return
    spend = spent_this_month(workspace.pk)
    least = plan.cost_of(1)
    if spend.total + least > budget:
        left = max(Decimal(0), budget - spend.total)
        month = month_bounds()[0]
        raise OverBudget(
            f"the workspace's monthly budget of ${budget} would be exceeded: "
            f"${_usd(spend.total)} spent in {month:%B %Y} (finished and running jobs), "
            f"${_usd(left)} left, and a job on {plan.name} costs at least ${_usd(least)}; "
            "an admin can raise the budget (PATCH /v1/owners/{ownerId} monthlyBudget, or the "
            "Usage page)"
        )


def _usd(value: Decimal) -> str:
    """Cents where that is exact enough, else every significant digit ($0.000027)."""
    cents = value.quantize(Decimal("0.01"))
    return str(cents) if cents == value or value >= 1 else str(value.normalize())

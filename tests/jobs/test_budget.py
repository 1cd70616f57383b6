"""A workspace's monthly budget (jobs.budget) on PostgreSQL: what counts as spent, the refusal
that names the budget, and two creates racing for the room of one."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from jobs import budget
from jobs.launch import create_job
from jobs.models import Job, JobStatus
from services.errors import Invalid, OverBudget
from services.models import Plan, Workspace


@pytest.fixture
def dollar_a_second(db):
    plan, _ = Plan.objects.update_or_create(
        id="plan-srv-test-pricey",
        defaults={
            "name": "Pricey (test)",
            "kind": "srv",
            "memory_mb": 64,
            "cpu": Decimal("0.25"),
            "price_monthly": Decimal("2592000.00"),
        },
    )
    return plan


@pytest.fixture
def priced(service, make_build, dollar_a_second, monkeypatch):
    make_build(service)
    monkeypatch.setattr("jobs.launch.enqueue_start", lambda job_id: True)
    service.plan = dollar_a_second
    service.save()
    return service


@pytest.mark.django_db
def test_spend_counts_finished_running_and_pending_jobs_of_this_month(make_job, priced):
    now = timezone.now()
    start, _ = budget.month_bounds(now)
    make_job(priced, cost=Decimal("3.5"), finished_at=now)
    make_job(priced, cost=Decimal("100"), finished_at=start - timedelta(seconds=1))  # last month
    make_job(priced, status=JobStatus.RUNNING, started_at=now - timedelta(seconds=9.5))
    make_job(priced, status=JobStatus.PENDING)
    spend = budget.spent_this_month(priced.workspace_id, now)
    assert spend.finished == Decimal("3.5")
    assert spend.running == Decimal("10")  # 9.5 s rounded up, at $1 a second
    assert spend.pending == Decimal("1")
    assert spend.total == Decimal("14.5")


@pytest.mark.django_db
def test_a_create_past_the_budget_is_refused_naming_it(make_job, priced, workspace):
    budget.set_budget(workspace, "12.50")
    make_job(priced, cost=Decimal("11.00"), finished_at=timezone.now())
    create_job(priced, "echo fits")  # $11 spent + its first second ($1): $12
    with pytest.raises(OverBudget) as caught:
        create_job(priced, "echo crosses")  # $11 + the pending job's $1 + $1 > $12.50
    message = caught.value.message
    assert message.startswith("the workspace's monthly budget of $12.50 would be exceeded: ")
    assert "$12.00 spent in " in message, message
    assert "$0.50 left" in message, message
    assert "a job on Pricey (test) costs at least $1.00" in message, message
    assert Job.objects.filter(start_command="echo crosses").count() == 0
    budget.set_budget(workspace, None)  # no budget: no limit
    create_job(priced, "echo fits again")


def test_month_bounds_are_utc_calendar_months():
    from datetime import UTC, datetime

    start, end = budget.month_bounds(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "must be between 0"),
        ("12.345", "whole cents"),
        ("abc", "an amount of USD"),
        ("NaN", "must be between 0"),
        ("1e20", "must be between 0"),
    ],
)
def test_bad_budgets_are_refused_naming_the_field(workspace, value, message):
    with pytest.raises(Invalid) as caught:
        budget.set_budget(workspace, value)
    assert caught.value.field == "monthlyBudget"
    assert message in caught.value.message


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_creates_racing_for_the_room_of_one_do_not_both_pass(priced, workspace):
    budget.set_budget(workspace, "1.50")  # room for one job's first second ($1), not two
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def create(n):
        try:
            barrier.wait(5)
            outcomes.append(create_job(priced, f"echo {n}"))
        except OverBudget as error:
            outcomes.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == 2
    assert sum(isinstance(o, Job) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, OverBudget) for o in outcomes) == 1, outcomes
    assert Job.objects.count() == 1
    assert Workspace.objects.get(pk=workspace.pk).monthly_budget == Decimal("1.50")

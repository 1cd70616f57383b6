"""A workspace's monthly budget against the real parts: the API, PostgreSQL, a Celery worker and
the Docker Engine. A job that would cross the budget is refused with a 402 naming it; the job
already running is not stopped."""

import time
from decimal import Decimal

import pytest

from jobs.models import Job, JobStatus
from services.models import Plan
from tests.helpers import assert_error, wait_finished, wait_status

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WORKER_ENV = {"JOB_STOP_GRACE": "1"}


@pytest.fixture
def dollar_a_second(db):
    """A plan billed $1 a second, so a budget is crossed in seconds."""
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


def test_a_budget_refuses_the_job_that_would_cross_it_and_stops_none(
    owner_api, job_service, live_worker, dollar_a_second, workspace, docker_client
):
    r = owner_api.patch(f"/v1/owners/{workspace.id}", {"monthlyBudget": "5.00"})
    assert r.status_code == 200, r.content
    assert r.json()["monthlyBudget"] == "5.00"
    jobs_url = f"/v1/services/{job_service.id}/jobs"
    r = owner_api.post(jobs_url, {"startCommand": "sleep 30", "planId": dollar_a_second.id})
    assert r.status_code == 201, r.content
    running = wait_status(Job.objects.get(pk=r.json()["id"]), JobStatus.RUNNING, timeout=20)
    # Past 4 s of $1 a second, the next job's first second would cross the $5 budget.
    time.sleep(max(0.0, 4.5 - (time.time() - running.started_at.timestamp())))
    r = owner_api.post(jobs_url, {"startCommand": "echo hi", "planId": dollar_a_second.id})
    body = assert_error(r, 402, id="budget_exceeded")
    assert "monthly budget of $5.00" in body["message"], body
    assert " spent in " in body["message"], body
    assert "$0.00 left" in body["message"], body
    assert Job.objects.count() == 1  # nothing was created
    owner = owner_api.get(f"/v1/owners/{workspace.id}").json()
    assert owner["monthlyBudget"] == "5.00"
    assert float(owner["monthlySpent"]) >= 5

    # The running job is not stopped by the budget: it keeps running (its container too).
    time.sleep(1)
    running.refresh_from_db()
    assert running.status == JobStatus.RUNNING
    assert docker_client.api.inspect_container(running.container_id)["State"]["Running"]

    # A bigger budget lets jobs in again; the running one was billed for all its time.
    owner_api.patch(f"/v1/owners/{workspace.id}", {"monthlyBudget": "1000"})
    r = owner_api.post(jobs_url, {"startCommand": "echo hi", "planId": dollar_a_second.id})
    assert r.status_code == 201, r.content
    owner_api.post(f"{jobs_url}/{running.id}/cancel")
    running = wait_finished(running, timeout=20)
    assert running.status == JobStatus.CANCELED
    assert running.billed_seconds >= 5
    assert running.cost >= 5
    wait_finished(Job.objects.get(pk=r.json()["id"]), timeout=20)

"""Browser tests of overrides and limits: an admin sets a budget on the Usage page and a
service's concurrency limit on its Settings page; a developer runs a job with a timeout and an
env var override from the Run job form and watches it time out; a job over the limit says why it
waits. Chromium against a live server, a real Celery worker and Docker Engine."""

import re

import pytest
from playwright.sync_api import expect

from jobs.launch import create_job
from jobs.models import Job, JobStatus
from services.models import Service, Workspace
from tests.helpers import screenshot, sign_in, wait_status

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.docker,
]

WORKER_ENV = {"JOB_STOP_GRACE": "1"}


def test_an_admin_sets_the_budget_and_a_services_limit(
    page, live_server, owner, workspace, service
):
    sign_in(page, live_server, "alice@acme.test", f"/workspaces/{workspace.id}/usage/")
    expect(page.locator("#budget-amount")).to_have_text("none")
    page.get_by_label("Monthly budget (USD)").fill("12.50")
    page.get_by_role("button", name="Save budget").click()
    expect(page.locator("#budget-amount")).to_have_text("$12.50")
    expect(page.locator("#budget-left")).to_have_text("$12.50")
    assert Workspace.objects.get(pk=workspace.pk).monthly_budget == 12.5
    screenshot(page, "usage-budget")

    page.goto(f"{live_server.url}/services/{service.id}/jobs/")
    page.get_by_role("link", name="Settings").click()
    expect(page).to_have_url(re.compile(f"/services/{service.id}/settings/$"))
    expect(page.locator("#max-concurrent")).to_have_text("no limit")
    page.get_by_label("Concurrent jobs").fill("2")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#max-concurrent")).to_have_text("at most 2 at once")
    assert Service.objects.get(pk=service.pk).max_concurrent_jobs == 2


def test_run_with_overrides_and_see_a_job_wait_its_turn(
    page, live_server, developer, service, busybox_build, live_worker
):
    busybox_build(service)
    # Masking off: the page must show the override's value as printed (and escaped).
    Service.objects.filter(pk=service.pk).update(max_concurrent_jobs=1, mask_secrets=False)
    first = create_job(service, "sleep 30", user=developer)
    wait_status(first, JobStatus.RUNNING, timeout=20)

    sign_in(page, live_server, "dave@acme.test", f"/services/{service.id}/jobs/")
    page.get_by_label("Command").fill('echo "greeting=$GREETING"; sleep 30')
    page.get_by_text("Overrides", exact=True).click()
    page.get_by_label("Timeout (seconds)").fill("2")
    page.get_by_label("Env var overrides").fill("GREETING=<b>hello</b>")
    screenshot(page, "run-form-overrides")
    page.get_by_role("button", name="Run job", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Started")
    job = Job.objects.exclude(pk=first.pk).get()
    assert job.timeout_seconds == 2
    assert job.env_override_keys == ["GREETING"]

    # It waits for the one slot, and its page says so.
    page.goto(f"{live_server.url}/services/{service.id}/jobs/{job.id}/")
    summary = page.locator("#job-summary")
    # ("Waiting for a runner" until the worker has taken its start message: seconds under load.)
    expect(summary).to_contain_text(
        "waiting: 1 of 1 concurrent jobs of this service are running", timeout=20_000
    )
    expect(summary).to_contain_text("GREETING")
    expect(summary).to_contain_text("2.0 s")
    expect(summary).not_to_contain_text("hello")
    screenshot(page, "job-waiting-for-a-slot")

    # The first one ends; this one starts, prints its override (escaped) and times out at 2 s.
    page.once("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server.url}/services/{service.id}/jobs/{first.id}/")
    page.get_by_role("button", name="Cancel job").click()
    page.goto(f"{live_server.url}/services/{service.id}/jobs/{job.id}/")
    expect(page.locator("#log-lines")).to_contain_text("greeting=<b>hello</b>", timeout=20_000)
    expect(page.locator("#job-summary .badge").first).to_have_text("failed", timeout=20_000)
    expect(summary).to_contain_text("Timed out after 2.0 s")
    job.refresh_from_db()
    assert job.reason == {"timedOutSeconds": 2}

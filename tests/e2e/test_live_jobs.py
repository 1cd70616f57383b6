"""Browser tests with jobs that really run: a live server, a real Celery worker subprocess
(``live_worker``) and Docker Engine running the busybox image."""

import re

import pytest
from playwright.sync_api import expect

from jobs.launch import create_job
from jobs.models import Job, JobStatus
from tests.helpers import screenshot, sign_in, wait_status

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.docker,
]


@pytest.fixture
def live_service(service, busybox_build, live_worker):
    busybox_build(service)
    return service


def badge(page, scope: str):
    return page.locator(f"{scope} .badge").first


def test_run_a_job_and_watch_it_live(page, live_server, owner, live_service):
    sign_in(page, live_server, "alice@acme.test", f"/services/{live_service.id}/jobs/")
    expect(page.get_by_text("No jobs yet.")).to_be_visible()
    page.evaluate("window.__noReload = 1")
    page.get_by_label("Command").fill("echo start; sleep 4; echo done; echo oops >&2")
    page.get_by_label("Instance type").select_option("plan-srv-008")
    page.get_by_role("button", name="Run job", exact=True).click()

    row = page.locator("#job-rows tr.job").first
    expect(row).to_be_visible()
    job = Job.objects.get()
    assert job.created_by == owner
    assert job.plan_id == "plan-srv-008"
    expect(page.get_by_role("status")).to_contain_text(f"Started {job.id}")
    expect(page.get_by_text("No jobs yet.")).to_be_hidden()
    expect(badge(page, f"#row-{job.id}")).to_have_text("pending")
    # The row refreshes itself while the job is unfinished.
    expect(badge(page, f"#row-{job.id}")).to_have_text("running", timeout=15_000)
    assert page.evaluate("window.__noReload") == 1

    page.locator(f"#row-{job.id}").get_by_role("link", name=job.id).click()
    expect(page).to_have_url(re.compile(f"/jobs/{job.id}/$"))
    page.evaluate("window.__noReload = 2")
    expect(page.locator("#log-lines li.line").first).to_contain_text("start", timeout=10_000)
    expect(badge(page, "#job-summary")).to_have_text("running")
    expect(page.locator("#log-live .live")).to_have_text("live")
    screenshot(page, "job-page-running")
    # New lines arrive and the status flips without a reload; then polling stops by itself.
    expect(page.locator("#log-lines")).to_contain_text("done", timeout=15_000)
    expect(badge(page, "#job-summary")).to_have_text("succeeded", timeout=15_000)
    expect(page.locator("#log-live .live")).to_have_count(0)  # with the status, not later
    expect(page.locator("#log-lines li.err")).to_contain_text("oops")
    expect(page.locator("#job-summary")).to_contain_text("Exited with code 0")
    expect(page.locator("#log-poller")).to_have_count(0, timeout=10_000)
    assert page.evaluate("window.__noReload") == 2
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED


def test_cancel_a_running_sleep_from_its_page(page, live_server, owner, live_service):
    job = create_job(live_service, "echo sleeping; sleep 300", user=owner)
    wait_status(job, JobStatus.RUNNING, timeout=20)
    sign_in(page, live_server, "alice@acme.test", f"/services/{live_service.id}/jobs/{job.id}/")
    expect(badge(page, "#job-summary")).to_have_text("running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel job").click()
    expect(page.get_by_role("button", name="Canceling…")).to_be_disabled()
    expect(badge(page, "#job-summary")).to_have_text("canceled", timeout=15_000)
    expect(page.locator("#job-summary")).to_contain_text("Canceled by alice@acme.test")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED
    assert job.canceled_by == owner


def test_a_job_printing_script_shows_text_and_runs_nothing(page, live_server, owner, live_service):
    job = create_job(
        live_service,
        "echo '<script>alert(1)</script>'; echo '<img src=x onerror=alert(2)>'",
        user=owner,
    )
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, live_server, "alice@acme.test", f"/services/{live_service.id}/jobs/{job.id}/")
    expect(page.locator("#log-lines")).to_contain_text("<script>alert(1)</script>", timeout=15_000)
    expect(page.locator("#log-lines")).to_contain_text("<img src=x onerror=alert(2)>")
    expect(badge(page, "#job-summary")).to_have_text("succeeded", timeout=15_000)
    expect(page.locator("#log-live .live")).to_have_count(0)  # with the status, not later
    assert page.locator("#log-lines script, #log-lines img").count() == 0
    page.reload()
    expect(page.locator("#log-lines")).to_contain_text("<script>alert(1)</script>")
    assert dialogs == []

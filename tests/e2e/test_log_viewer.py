"""Browser tests of the job page's log viewer: the layout (the log fills the viewport), ANSI
colours, permalinks to any line, find in the log, keyboard-only use, the status in the tab and
the copy buttons."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import Job, JobStatus
from tests.helpers import add_lines, screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def job_url(job) -> str:
    return f"/services/{job.service_id}/jobs/{job.id}/"


def test_the_log_fills_the_viewport_and_details_fold(page, live_server, owner, make_job):
    job = make_job(status=JobStatus.FAILED, exit_code=3, reason={"nonZeroExit": 3}, lines=["x"])
    add_lines(job, [f"line {i}" for i in range(2, 200)], start=2)
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    log = page.locator("#log-lines")
    expect(log).to_be_visible()
    head = page.locator("#job-summary").bounding_box()
    box = log.bounding_box()
    assert head
    assert box
    assert head["height"] < 170, head  # one line of facts and actions, not a page of them
    assert box["y"] < 450, box
    assert box["y"] + box["height"] > 800, box  # down to the viewport's end
    expect(page.get_by_text("Exited with code 3")).to_be_visible()
    expect(page.get_by_text("Instance type")).to_be_hidden()
    page.screenshot(path=str(screenshot(page, "job-page-layout").with_name("job-page-fold.png")))
    page.get_by_text("Details: build").click()
    expect(page.get_by_text("Instance type")).to_be_visible()
    expect(page.get_by_text("Env digest")).to_be_visible()


def test_the_tab_shows_the_status_while_running_and_when_done(page, live_server, owner, make_job):
    job = make_job(status=JobStatus.RUNNING, lines=["working"])
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    expect(page).to_have_title(re.compile(rf"^running · {job.id}"))
    assert "svg" in page.locator("link[rel=icon]").get_attribute("href")
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, exit_code=0)
    expect(page).to_have_title(re.compile(rf"^succeeded · {job.id}"))
    expect(page.locator("#job-summary .badge")).to_have_text("succeeded")


def test_copy_buttons(page, live_server, owner, make_job):
    job = make_job(command="echo 'it''s' \"q\"")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    page.get_by_role("button", name="Copy job ID").click()
    expect(page.get_by_role("button", name="Copy job ID")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == job.id
    page.get_by_role("button", name="Copy command").click()
    assert page.evaluate("navigator.clipboard.readText()") == job.start_command
    page.get_by_role("button", name="Copy as API call").click()
    curl = page.evaluate("navigator.clipboard.readText()")
    assert curl.startswith(f"curl -X POST '{live_server.url}/v1/services/{job.service_id}/jobs'")
    assert "Authorization: Bearer $ONEOFF_API_KEY" in curl
    assert f'"planId":"{job.plan_id}"' in curl

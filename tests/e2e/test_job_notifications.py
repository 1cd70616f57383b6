"""The job page's opt-in browser notification when a job the reader started ends: the permission
path in Chromium (granted: one notification with the job's command and final status, the opt-in
remembered; denied: a clear note and none), and never for someone else's job."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import Job, JobStatus
from tests.helpers import SCREENSHOTS, sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# Every notification the page makes, kept in window.__notes (the real one is still made).
CAPTURE = """(() => {
  const Real = window.Notification;
  if (!Real) return;
  window.__notes = [];
  function Captured(title, options) {
    window.__notes.push({ title: title, body: (options || {}).body, tag: (options || {}).tag });
    return new Real(title, options);
  }
  Captured.prototype = Real.prototype;
  Captured.requestPermission = (...args) => Real.requestPermission(...args);
  Object.defineProperty(Captured, "permission", { get: () => Real.permission });
  window.Notification = Captured;
})();"""


NOTE = "Notifications are blocked for this site"


def job_url(job) -> str:
    return f"/services/{job.service_id}/jobs/{job.id}/"


def finish(job, status, **fields):
    Job.objects.filter(pk=job.pk).update(status=status, finished_at=job.created_at, **fields)


def notes(page):
    return page.evaluate("window.__notes")


def test_granted_the_reader_is_told_when_their_job_ends(page, live_server, owner, make_job):
    job = make_job(status=JobStatus.RUNNING, command="python manage.py migrate", lines=["go"])
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    page.context.add_init_script(CAPTURE)
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    button = page.get_by_role("button", name="Notify me when it ends")
    expect(button).to_be_visible()
    expect(button).to_have_attribute("aria-pressed", "false")
    button.click()
    on = page.get_by_role("button", name="Notifying when it ends")
    expect(on).to_have_attribute("aria-pressed", "true")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "job-notify-on.png"))
    assert notes(page) == []  # nothing while it runs

    finish(job, JobStatus.FAILED, exit_code=3, reason={"nonZeroExit": 3})
    expect(page).to_have_title(re.compile(rf"^failed · {job.id}"))
    expect(page.locator("#notify-toggle")).to_have_count(0)  # a finished job has no button
    page.wait_for_timeout(1500)  # later polls of the finished job: still one notification
    assert notes(page) == [
        {"title": f"Job failed · {job.id}", "body": "python manage.py migrate", "tag": job.id}
    ]

    # The next job page offers it as on, and tells of that job's end too.
    second = make_job(status=JobStatus.RUNNING, command="echo second", lines=["go"])
    page.goto(live_server.url + job_url(second))
    expect(page.get_by_role("button", name="Notifying when it ends")).to_be_visible()
    finish(second, JobStatus.SUCCEEDED, exit_code=0)
    expect(page).to_have_title(re.compile(rf"^succeeded · {second.id}"))
    page.wait_for_function("window.__notes.length === 1")
    assert notes(page)[0]["title"] == f"Job succeeded · {second.id}"
    assert notes(page)[0]["body"] == "echo second"

    # Turned off: no notification for the next one.
    third = make_job(status=JobStatus.RUNNING, command="echo third", lines=["go"])
    page.goto(live_server.url + job_url(third))
    page.get_by_role("button", name="Notifying when it ends").click()
    expect(page.get_by_role("button", name="Notify me when it ends")).to_be_visible()
    finish(third, JobStatus.SUCCEEDED, exit_code=0)
    expect(page).to_have_title(re.compile(rf"^succeeded · {third.id}"))
    page.wait_for_timeout(500)
    assert notes(page) == []


def test_denied_a_clear_note_and_no_notification(page, live_server, owner, make_job):
    job = make_job(status=JobStatus.RUNNING, lines=["go"])
    page.context.add_init_script(CAPTURE)
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    page.get_by_role("button", name="Notify me when it ends").click()
    note = page.locator("#notify-note")
    expect(note).to_contain_text(NOTE)
    page.wait_for_timeout(1500)  # the log's polls (a swap each second) leave the note
    expect(note).to_contain_text(NOTE)
    assert page.evaluate("Notification.permission") != "granted"
    expect(page.locator("#notify-toggle")).to_have_attribute("aria-pressed", "false")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "job-notify-denied.png"))
    finish(job, JobStatus.SUCCEEDED, exit_code=0)
    expect(page).to_have_title(re.compile(rf"^succeeded · {job.id}"))
    page.wait_for_timeout(500)
    assert notes(page) == []


def test_never_for_someone_elses_job(page, live_server, owner, developer, make_job):
    """Alice has opted in and allowed notifications; Dave's job, and a job an API key started,
    neither offer the button nor tell her when they end."""
    theirs = make_job(status=JobStatus.RUNNING, created_by=developer, lines=["go"])
    by_key = make_job(status=JobStatus.RUNNING, created_by=None, lines=["go"])
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    page.context.add_init_script(CAPTURE + "localStorage.setItem('oneoff.notify', '1');")
    sign_in(page, live_server, "alice@acme.test")
    for job in (theirs, by_key):
        page.goto(live_server.url + job_url(job))
        expect(page.locator("#job-summary .badge")).to_have_text("running")
        expect(page.locator("#notify-toggle")).to_have_count(0)
        finish(job, JobStatus.SUCCEEDED, exit_code=0)
        expect(page).to_have_title(re.compile(rf"^succeeded · {job.id}"))
        page.wait_for_timeout(500)
        assert notes(page) == [], job

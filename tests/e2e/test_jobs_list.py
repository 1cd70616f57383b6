"""The Jobs list in a browser: new jobs and state changes arrive with one list request per poll
interval, date filters count the reader's days (a browser at UTC+14 and at UTC-11), and the page
at 1024 px and 390 px."""

import re
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import httpx
import pytest
from playwright.sync_api import expect

from jobs.models import Job, JobStatus
from services.models import ApiKey
from tests.helpers import CHROMIUM_ARGS, TIMEOUT_MS, chromium, screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

POLL = 1.0  # seconds between two list polls in these tests


@pytest.fixture
def fast_poll(settings):
    settings.JOBS_LIST_POLL_SECONDS = POLL


@pytest.fixture
def browser_in(request):
    """Pages of Chromium contexts in a given time zone (``timezone_id``) and viewport."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    executable = chromium()
    request.getfixturevalue("db")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        contexts = []

        def new_page(timezone_id="UTC", width=1280, height=900):
            context = browser.new_context(
                viewport={"width": width, "height": height},
                timezone_id=timezone_id,
                locale="en-US",
            )
            context.set_default_timeout(TIMEOUT_MS)
            contexts.append(context)
            return context.new_page()

        try:
            yield new_page
        finally:
            for context in contexts:
                context.close()
            browser.close()
            connections.close_all()


def head_requests(log, start, end):
    return [url for at, url in log if start <= at < end and "/jobs/head/" in url]


def test_the_list_picks_up_api_jobs_with_one_request_per_interval(
    page, live_server, owner, workspace, service, make_job, fast_poll
):
    for i in range(3):  # unfinished rows: still one request per interval for all of them
        make_job(status=JobStatus.RUNNING, command=f"sleep {i}")
    make_job(status=JobStatus.SUCCEEDED, command="echo old")
    log: list[tuple[float, str]] = []
    page.on("request", lambda r: log.append((time.monotonic(), r.url)))
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    expect(page.locator("#job-rows tr.job")).to_have_count(4)
    page.evaluate("window.__noReload = 1")

    # A job created through the API shows up within two intervals, without a reload.
    _, secret = ApiKey.issue(owner, workspace, name="ci")
    r = httpx.post(
        f"{live_server.url}/v1/services/{service.id}/jobs",
        json={"startCommand": "echo from the api"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert r.status_code == 201, r.text
    created = time.monotonic()
    new = Job.objects.get(start_command="echo from the api")
    row = page.locator(f"#row-{new.id}")
    expect(row).to_be_visible(timeout=2 * POLL * 1000 + 500)
    arrived = time.monotonic() - created
    assert arrived <= 2 * POLL + 0.5, arrived
    expect(page.locator("#job-rows tr.job").first).to_have_id(f"row-{new.id}")
    expect(row.locator(".badge")).to_have_text("pending")
    expect(row.locator(".pending-note")).to_contain_text("waiting for a runner, #1 in queue")
    expect(row.locator(".runby")).to_have_text("alice@acme.test")
    expect(page.locator('.chip .count[data-status="pending"]')).to_have_text("1")

    # States update in place: the runner starts it (a state change, as the runner makes it).
    Job.objects.filter(pk=new.pk).update(
        status=JobStatus.RUNNING, started_at=datetime.now(UTC), note=""
    )
    expect(row.locator(".badge")).to_have_text("running", timeout=2 * POLL * 1000 + 500)
    expect(page.locator('.chip .count[data-status="running"]')).to_have_text("4")
    expect(page.locator('.chip .count[data-status="pending"]')).to_have_text("0")

    # Over a window of five intervals: about one list request per interval, none per row.
    start = time.monotonic()
    page.wait_for_timeout(5 * POLL * 1000)
    end = time.monotonic()
    polls = head_requests(log, start, end)
    assert 4 <= len(polls) <= 5, polls
    assert not [url for _, url in log if "/row/" in url]
    # ... and the whole time, never more than one per interval.
    times = [at for at, url in log if "/jobs/head/" in url]
    gaps = [b - a for a, b in pairwise(times)]
    assert min(gaps) >= POLL * 0.9, gaps
    assert page.evaluate("window.__noReload") == 1
    screenshot(page, "jobs-list-live")


def test_a_row_opens_its_job_by_click_and_keyboard(page, live_server, owner, service, make_job):
    job = make_job(status=JobStatus.FAILED, exit_code=3, reason={"nonZeroExit": 3})
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    row = page.locator(f"#row-{job.id}")
    expect(row.locator(".end-chip")).to_have_text("exit 3")
    expect(row.locator("td.created time")).to_have_text("just now")
    title = row.locator("td.created time").get_attribute("title") or ""
    assert "UTC" in title
    assert str(datetime.now(UTC).year) in title
    row.locator("td.cmd").click()
    expect(page).to_have_url(f"{live_server.url}/services/{service.id}/jobs/{job.id}/")
    page.go_back()
    page.locator(f"#row-{job.id}").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/services/{service.id}/jobs/{job.id}/")


def test_search_rerun_with_changes_and_rerun_feedback(page, live_server, owner, service, make_job):
    migrate = make_job(command="python manage.py migrate")
    other = make_job(command="echo hi")
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    page.get_by_label("Search").fill("migrate")
    expect(page.locator(f"#row-{other.id}")).to_have_count(0)
    expect(page.locator(f"#row-{migrate.id}")).to_be_visible()
    expect(page.get_by_role("link", name="Clear filters")).to_be_visible()
    expect(page.locator('.chip .count[data-status="succeeded"]')).to_have_text("1")
    page.get_by_role("link", name="Clear filters").click()
    expect(page.locator(f"#row-{other.id}")).to_be_visible()
    expect(page.get_by_role("link", name="Clear filters")).to_have_count(0)
    expect(page.locator('.chip .count[data-status="succeeded"]')).to_have_text("2")

    # Rerun from the list says what it started.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Rerun {migrate.id}", exact=True).click()
    expect(page.locator("#list-status")).to_contain_text(f"a rerun of {migrate.id}")
    new = Job.objects.get(rerun_of=migrate)
    expect(page.locator("#job-rows tr.job").first).to_have_id(f"row-{new.id}")

    # Rerun with changes: the form filled in, the price per hour beside each plan.
    page.locator(f"#row-{migrate.id}").get_by_role("link", name="Rerun with changes").click()
    expect(page.get_by_role("heading", name="Rerun with changes")).to_be_visible()
    expect(page.get_by_label("Command")).to_have_value("python manage.py migrate")
    expect(page.get_by_label("Command")).to_be_focused()
    options = page.get_by_label("Instance type").locator("option").all_inner_texts()
    assert all("/h" in option for option in options), options
    page.get_by_label("Command").fill("python manage.py migrate --plan")
    page.get_by_role("button", name="Run job", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Started")
    changed = Job.objects.get(start_command="python manage.py migrate --plan")
    assert changed.rerun_of == migrate


# 2026-12-02 11:30 UTC: 3 Dec 01:30 at Kiritimati (UTC+14), 2 Dec 00:30 at Pago Pago (UTC-11).
WHEN = datetime(2026, 12, 2, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "day", "other_day", "shown_as"),
    [
        ("Pacific/Kiritimati", "2026-12-03", "2026-12-02", "Dec 3, 2026"),
        ("Pacific/Pago_Pago", "2026-12-02", "2026-12-03", "Dec 2, 2026"),
    ],
)
def test_date_filters_count_the_readers_days(
    browser_in, live_server, owner, service, make_job, zone, day, other_day, shown_as
):
    job = make_job(created_at=WHEN)
    page = browser_in(timezone_id=zone)
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    row = page.locator(f"#row-{job.id}")
    title = row.locator("td.created time").get_attribute("title") or ""
    assert shown_as in title, title  # the day the list shows ...
    expect(page.locator("#tz-label")).to_have_text(f"({zone})")
    # ... is the day the filter takes.
    page.locator('input[name="created_from"]').fill(day)
    page.locator('input[name="created_to"]').fill(day)
    expect(row).to_be_visible()
    query = f"created_from={day}&created_to={day}&tz={zone.replace('/', '%2F')}"
    expect(page).to_have_url(re.compile(re.escape(query)))
    expect(page.get_by_role("link", name="Clear filters")).to_be_visible()
    page.locator('input[name="created_to"]').fill("")
    page.locator('input[name="created_from"]').fill(other_day)
    if other_day > day:
        expect(page.locator(f"#row-{job.id}")).to_have_count(0)
        expect(page.get_by_text("No jobs match these filters.")).to_be_visible()
    else:
        expect(page.locator(f"#row-{job.id}")).to_be_visible()
    screenshot(page, f"jobs-filter-{zone.split('/')[1].lower()}")
    # A link with dates but no zone means the reader's days too (the cookie, or a re-ask).
    page.goto(f"{live_server.url}/services/{service.id}/jobs/?created_from={day}&created_to={day}")
    expect(page.locator(f"#row-{job.id}")).to_be_visible()
    page.get_by_role("link", name="Clear filters").click()
    expect(page.get_by_role("link", name="Clear filters")).to_have_count(0)
    expect(page.locator('input[name="created_from"]')).to_have_value("")


def make_many(make_job):
    now = datetime.now(UTC)
    make_job(status=JobStatus.RUNNING, command="python manage.py rebuild_index --verbose")
    make_job(status=JobStatus.PENDING, command="./bin/send-digest --all --batch-size 500")
    make_job(
        status=JobStatus.FAILED,
        command="python manage.py migrate",
        exit_code=137,
        reason={"oomKilled": {"memoryLimit": "512Mi"}},
        created_at=now - timedelta(hours=1),
    )
    make_job(
        status=JobStatus.CANCELED,
        command="sleep 3600",
        created_at=now - timedelta(hours=2),
        reason={"canceledBy": "alice@acme.test"},
    )
    for i in range(6):
        make_job(command=f"./manage.py export --day {i}", created_at=now - timedelta(days=i + 1))


def test_at_1024_px_every_column_and_action_is_visible(
    browser_in, live_server, owner, service, make_job
):
    make_many(make_job)
    page = browser_in(width=1024, height=768)
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    expect(page.locator("#job-rows tr.job")).to_have_count(10)
    screenshot(page, "jobs-list-1024")
    for name in ("Status", "Job", "Command", "Plan", "Run by", "Created", "Duration", "Cost"):
        header = page.get_by_role("columnheader", name=name, exact=True)
        expect(header).to_be_visible()
        box = header.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= 1024, (name, box)
    for button in page.locator("#job-rows tr.job .actions").locator("button, a").all():
        box = button.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= 1024, box
    wrap = page.locator(".table-wrap")
    assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth"), "the table scrolls sideways"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024


def test_at_390_px_the_first_screen_shows_jobs(browser_in, live_server, owner, service, make_job):
    make_many(make_job)
    page = browser_in(width=390, height=844)
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    rows = page.locator("#job-rows tr.job")
    expect(rows).to_have_count(10)
    path = screenshot(page, "jobs-list-390")
    page.screenshot(path=str(path.with_name("jobs-list-390-fold.png")))  # the first screen
    first = rows.first.bounding_box()
    assert first is not None
    assert first["y"] + first["height"] <= 844, first
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # The run form is still there, below the list, and actions are reachable in each card.
    expect(page.get_by_role("button", name="Run job", exact=True)).to_be_attached()
    expect(rows.first.get_by_role("button", name="Cancel", exact=False)).to_be_visible()


def test_clear_filters_stays_in_step_with_the_filters(
    browser_in, live_server, owner, service, make_job
):
    """ "Clear filters" shows whenever a filter is set (however it was set: the search, a chip, a
    date, a shared link, the browser's Back) and hides when none is; clearing empties every
    field, the zone stays the reader's."""
    failed = make_job(status=JobStatus.FAILED, command="python manage.py migrate", exit_code=1)
    other = make_job(command="echo hi")
    page = browser_in(timezone_id="Asia/Tokyo")
    jobs = f"/services/{service.id}/jobs/"
    sign_in(page, live_server, "alice@acme.test", jobs)
    clear = page.locator("#clear-filters").get_by_role("link", name="Clear filters")
    expect(page.locator(f"#row-{other.id}")).to_be_visible()
    expect(clear).to_have_count(0)

    # Each filter alone shows it; taking that filter off again (through htmx) hides it.
    page.get_by_label("Search").fill("migrate")
    expect(page.locator(f"#row-{other.id}")).to_have_count(0)
    expect(clear).to_be_visible()
    page.get_by_label("Search").fill("")
    expect(page.locator(f"#row-{other.id}")).to_be_visible()
    expect(clear).to_have_count(0)
    chip = page.locator('.chip input[value="failed"]')
    chip.check()
    expect(page.locator(f"#row-{other.id}")).to_have_count(0)
    expect(clear).to_be_visible()
    chip.uncheck()
    expect(page.locator(f"#row-{other.id}")).to_be_visible()
    expect(clear).to_have_count(0)
    page.locator('input[name="created_to"]').fill("2099-01-01")
    expect(clear).to_be_visible()
    expect(page).to_have_url(re.compile(r"tz=Asia%2FTokyo"))
    page.locator('input[name="created_to"]').fill("")
    expect(clear).to_have_count(0)
    expect(page).to_have_url(f"{live_server.url}{jobs}")

    # All of them at once, then cleared: every field empty, the zone the reader's, no query.
    page.get_by_label("Search").fill("manage")
    chip.check()
    page.locator('input[name="created_from"]').fill("2020-01-01")
    expect(page).to_have_url(re.compile(r"created_from=2020-01-01"))
    expect(page.locator(f"#row-{failed.id}")).to_be_visible()
    expect(page.locator(f"#row-{other.id}")).to_have_count(0)
    clear.click()
    expect(page).to_have_url(f"{live_server.url}{jobs}")
    expect(page.locator(f"#row-{other.id}")).to_be_visible()
    expect(clear).to_have_count(0)
    expect(page.get_by_label("Search")).to_have_value("")
    expect(chip).not_to_be_checked()
    expect(page.locator('input[name="created_from"]')).to_have_value("")
    expect(page.locator('input[name="created_to"]')).to_have_value("")
    expect(page.locator('input[name="tz"]')).to_have_value("Asia/Tokyo")
    expect(page.locator("#tz-label")).to_have_text("(Asia/Tokyo)")
    expect(page.locator('.chip .count[data-status="succeeded"]')).to_have_text("1")

    # Back to the filtered list: the filters, the rows and "Clear filters" come back together.
    page.go_back()
    expect(page).to_have_url(re.compile(r"created_from=2020-01-01"))
    expect(page.get_by_label("Search")).to_have_value("manage")
    expect(chip).to_be_checked()
    expect(page.locator(f"#row-{other.id}")).to_have_count(0)
    expect(clear).to_be_visible()
    # The empty list's own "Clear the filters" link clears the same way.
    page.get_by_label("Search").fill("no such command")
    expect(page.get_by_text("No jobs match these filters.")).to_be_visible()
    page.get_by_role("link", name="Clear the filters").click()
    expect(page).to_have_url(f"{live_server.url}{jobs}")
    expect(page.get_by_label("Search")).to_have_value("")
    expect(chip).not_to_be_checked()
    expect(clear).to_have_count(0)

"""Browser tests of the job page's log viewer: the layout (the log fills the viewport), ANSI
colours, permalinks to any line, find in the log, keyboard-only use, the status in the tab and
the copy buttons."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import Job, JobStatus
from tests.helpers import SCREENSHOTS, add_lines, sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def shot(page, name: str) -> None:
    """A screenshot of the viewport (the log is as tall as the viewport: a full-page one grows)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


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
    assert box["y"] < 520, box  # below the header, the log toolbar and the retention note
    assert box["y"] + box["height"] > 800, box  # down to the viewport's end
    expect(page.locator("#job-summary").get_by_text("Exited with code 3")).to_be_visible()
    expect(page.get_by_text("Instance type")).to_be_hidden()
    shot(page, "job-page-layout")
    page.get_by_text("Details: build").click()
    expect(page.get_by_text("Instance type")).to_be_visible()
    expect(page.get_by_text("Env digest")).to_be_visible()


def test_the_tab_shows_the_status_while_running_and_when_done(page, live_server, owner, make_job):
    job = make_job(status=JobStatus.RUNNING, lines=["working"])
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    expect(page).to_have_title(re.compile(rf"^running · {job.id}"))
    assert "svg" in page.locator("link[rel=icon]").get_attribute("href")
    page.get_by_text("Details: build").click()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, exit_code=0)
    expect(page).to_have_title(re.compile(rf"^succeeded · {job.id}"))
    expect(page.locator("#job-summary .badge")).to_have_text("succeeded")
    expect(page.get_by_text("Env digest")).to_be_visible()  # the details stay open
    expect(page.locator("#log-lines li.system").last).to_have_text("Exited with code 0: success")


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


def test_ansi_colours_and_control_characters(page, live_server, owner, make_job):
    e = "\x1b"
    job = make_job(
        lines=[
            f"{e}[1;31mERROR{e}[0m {e}[32m<script>window.__xss=1</script>{e}[0m",
            f"{e}[38;2;255;135;0morange{e}[0m {e}[48;5;21mblue bg{e}[0m bell\x07",
            "file\u202etxt.exe",
        ]
    )
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    # The job's first line (seq 0 in real logs, 1 in this fixture) is numbered from seq + 1.
    first = page.locator("#log-lines li.line").first
    red = first.locator(".a-f1.a-bo")
    expect(red).to_have_text("ERROR")
    assert red.evaluate("e => getComputedStyle(e).fontWeight") == "700"
    assert red.evaluate("e => getComputedStyle(e).color") == "rgb(255, 123, 114)"
    expect(first.locator(".a-f2")).to_have_text("<script>window.__xss=1</script>")
    assert page.evaluate("window.__xss") is None
    second = page.locator("#log-lines li.line").nth(1)
    orange = second.get_by_text("orange")
    assert orange.evaluate("e => getComputedStyle(e).color") == "rgb(255, 135, 0)"
    expect(second.locator(".ctl")).to_have_text("\\x07")
    expect(page.locator("#log-lines li.line").nth(2).locator(".ctl")).to_have_text("<U+202E>")
    shot(page, "log-ansi")


def long_job(make_job, count=3000):
    job = make_job()
    add_lines(job, [f"line {n} of the log" for n in range(1, count + 1)], start=0)  # seq from 0
    return job


HIGHLIGHT = "rgb(74, 66, 18)"  # .log li:target


def assert_shown_and_highlighted(page, n):
    line = page.locator(f"#L{n}")
    expect(line).to_contain_text(f"line {n} of the log")
    expect(line).to_be_in_viewport()
    expect(line).to_have_css("background-color", HIGHLIGHT)
    expect(line.locator(".ln")).to_have_text(str(n))


def test_permalinks_to_any_line_of_a_long_log(page, live_server, owner, make_job):
    job = long_job(make_job)
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    expect(page.locator("#log-lines li.line")).to_have_count(1000)
    expect(page.locator("#L5")).to_have_count(0)  # the page holds the latest 1,000 lines
    # Line 2,500: in the page; scrolled to and highlighted.
    page.goto(live_server.url + job_url(job) + "#L2500")
    assert_shown_and_highlighted(page, 2500)
    page.wait_for_timeout(300)
    expect(page.locator("#job-summary")).to_be_in_viewport()  # the page stays put, the log scrolls
    assert_shown_and_highlighted(page, 2500)
    shot(page, "log-permalink-2500")
    # Line 5: not in the page; the page around it is loaded.
    page.goto(live_server.url + job_url(job) + "#L5")
    expect(page).to_have_url(re.compile(r"\?line=5#L5$"))
    assert_shown_and_highlighted(page, 5)
    expect(page.locator("#L1")).to_contain_text("line 1 of the log")
    expect(page.get_by_role("button", name="Load earlier lines")).to_have_count(0)
    page.get_by_role("button", name="Load later lines").click()
    expect(page.locator("#log-lines li.line")).to_have_count(2000)
    expect(page.locator("#L2000")).to_be_attached()
    # Line 1,700 from the address bar: the page around it, with earlier and later lines to load.
    page.goto(live_server.url + job_url(job) + "#L1700")
    expect(page).to_have_url(re.compile(r"\?line=1700#L1700$"))
    assert_shown_and_highlighted(page, 1700)
    expect(page.locator("#log-lines li.line").first).to_have_id("L1200")
    page.get_by_role("button", name="Load earlier lines").click()  # scrolled to the top for it
    expect(page.locator("#L200")).to_be_attached()
    expect(page.locator("#L1200")).to_be_in_viewport()  # the lines read stay where they were
    expect(page.locator("#L199")).not_to_be_in_viewport()
    expect(page.locator("#L1700")).to_have_css("background-color", HIGHLIGHT)
    shot(page, "log-permalink-1700")
    # A click on a line number makes it the permalink.
    page.locator("#L1702 .ln").click()
    expect(page).to_have_url(re.compile(r"#L1702$"))
    expect(page.locator("#L1702")).to_have_css("background-color", HIGHLIGHT)


def test_a_link_past_the_end_does_not_loop(page, live_server, owner, make_job):
    job = long_job(make_job, 1500)
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    page.goto(live_server.url + job_url(job) + "#L99999")
    expect(page.locator("#log-lines li.line")).to_have_count(1000)
    page.wait_for_timeout(500)
    expect(page).to_have_url(re.compile(r"\?line=99999#L99999$"))


def test_find_next_previous_and_keyboard_only(page, live_server, owner, make_job):
    job = make_job()
    add_lines(
        job,
        ["boot", "\x1b[31merror\x1b[0m: disk", "ok", "ERROR again", "fine", "an error, last"],
        start=0,
    )
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    expect(page.locator("#L6")).to_be_attached()
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("/")  # the shortcut to find
    expect(page.locator("#log-find")).to_be_focused()
    page.keyboard.type("error")
    count = page.locator("#log-find-count")
    expect(count).to_have_text("1 of 3")
    expect(page.locator("#L2")).to_have_class(re.compile("found-current"))
    page.keyboard.press("Enter")
    expect(count).to_have_text("2 of 3")
    expect(page.locator("#L4")).to_have_class(re.compile("found-current"))
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # wraps around
    expect(count).to_have_text("1 of 3")
    page.keyboard.press("Shift+Enter")
    expect(count).to_have_text("3 of 3")
    expect(page.locator("#L6")).to_have_class(re.compile("found-current"))
    assert page.evaluate("CSS.highlights.get('log-find').size") == 3
    shot(page, "log-find")
    # The buttons, reached with Tab and pressed with the keyboard.
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Previous match")).to_be_focused()
    page.keyboard.press("Enter")
    expect(count).to_have_text("2 of 3")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Next match")).to_be_focused()
    page.keyboard.press("Enter")
    expect(count).to_have_text("3 of 3")
    # Timestamps and wrap toggles with Space; remembered after a reload.
    page.keyboard.press("Tab")
    expect(page.get_by_label("Timestamps")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#L1 time")).to_be_hidden()
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(page.locator("#log-viewer")).to_have_class(re.compile("no-wrap"))
    page.reload()
    expect(page.locator("#L1 time")).to_be_hidden()
    expect(page.get_by_label("Wrap lines")).not_to_be_checked()
    # Escape clears the find; a line number is a link reached with the keyboard.
    page.keyboard.press("/")
    page.keyboard.type("fine")
    expect(count).to_have_text("1 of 1")
    page.keyboard.press("Escape")
    expect(count).to_have_text("")
    page.locator("#L3 .ln").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#L3$"))
    expect(page.locator("#L3")).to_have_css("background-color", HIGHLIGHT)


def test_the_raw_view_is_the_plain_text(page, live_server, owner, make_job):
    job = make_job(lines=["\x1b[31mred\x1b[0m <b>", "two"])
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Raw").click()
    raw = opened.value
    raw.wait_for_load_state()
    assert raw.locator("body").inner_text().rstrip("\n") == "\x1b[31mred\x1b[0m <b>\ntwo"


def test_the_page_keeps_at_most_its_cap_of_lines(page, live_server, owner, make_job):
    job = make_job(status=JobStatus.RUNNING)
    add_lines(job, [f"l{n}" for n in range(1, 31)], start=0)
    page.add_init_script("window.ONEOFF_LOG_CAP = 40")
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    expect(page.locator("#log-lines li.line")).to_have_count(30)
    add_lines(job, [f"l{n}" for n in range(31, 61)], start=30)
    expect(page.locator("#L60")).to_be_attached()
    expect(page.locator("#log-lines li.line")).to_have_count(40)
    expect(page.locator("#log-lines li.line").first).to_have_id("L21")
    page.get_by_role("button", name="Load earlier lines").click()
    expect(page.locator("#L1")).to_be_attached()
    expect(page.locator("#log-lines li.line")).to_have_count(60)


def test_the_retention_date_moves_to_the_jobs_end(page, live_server, owner, make_job):
    """While the job runs its logs are kept from its creation; when the status poll brings the
    finished summary, the date is counted from its end."""
    from datetime import UTC, datetime, timedelta

    created = datetime.now(UTC) - timedelta(days=2)
    job = make_job(status=JobStatus.RUNNING, created_at=created, lines=["working"])
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    date = page.locator("#log-retention time")
    running = (created + timedelta(days=7)).isoformat(timespec="milliseconds")
    expect(date).to_have_attribute("datetime", running.replace("+00:00", "Z"))
    expect(page.locator("#log-retention")).to_contain_text("counted from the job's end")
    local = date.inner_text()
    finished = datetime.now(UTC).replace(microsecond=0)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED, exit_code=0, finished_at=finished
    )
    expect(page.locator("#job-summary .badge")).to_have_text("succeeded")
    ended = (finished + timedelta(days=7)).isoformat(timespec="milliseconds")
    expect(date).to_have_attribute("datetime", ended.replace("+00:00", "Z"))
    expect(page.locator("#log-retention")).not_to_contain_text("counted from")
    expect(date).not_to_have_text(local)
    expect(date).not_to_have_text(re.compile("UTC$"))  # shown in the reader's zone, as before


def test_at_390_px_the_log_is_readable(page, live_server, owner, make_job):
    """A phone: the log takes the width, long lines wrap (or, unwrapped, scroll inside the log,
    never the page), and the header's facts and actions are all reachable."""
    job = make_job(
        status=JobStatus.RUNNING,
        command="python manage.py migrate --database=default --verbosity=2",
    )
    long_token = "x" * 300
    add_lines(
        job,
        [
            "Operations to perform:",
            f"  Apply all migrations: {long_token}",
            "  Applying shop.0042_order_index_with_a_rather_long_name_for_a_phone... OK",
            "\x1b[31mwarning\x1b[0m: " + "word " * 60,
        ]
        + [f"line {n}" for n in range(5, 60)],
        start=0,
    )
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    log = page.locator("#log-lines")
    expect(page.locator("#L59")).to_be_attached()
    shot(page, "job-page-390")
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = log.bounding_box()
    assert box
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width
    assert box["width"] >= 0.85 * width, box  # the log takes the width
    assert box["height"] >= 0.9 * 844, box  # scrolled to, it fills the screen to read
    # Wrapped (the default): no line is wider than the log.
    assert log.evaluate("e => e.scrollWidth <= e.clientWidth"), "the log scrolls sideways"
    long_line = page.locator("#L2")
    assert long_line.evaluate("e => e.scrollWidth <= e.clientWidth")
    assert long_line.bounding_box()["height"] > 40  # it wrapped onto several lines
    # The header: status, id, command, and every action within the screen's width.
    for element in page.locator(
        "#job-summary .badge, #job-summary code.job-id, #job-summary code.command,"
        " #job-summary .actions button, #job-summary .actions a, #job-summary .copy"
    ).all():
        element.scroll_into_view_if_needed()
        expect(element).to_be_visible()
        b = element.bounding_box()
        assert b
        assert b["x"] >= 0
        assert b["x"] + b["width"] <= width, (element.evaluate("e => e.outerHTML"), b)
    log.evaluate("e => { e.scrollIntoView(); e.scrollTop = 0; }")  # the reader scrolls to it
    shot(page, "job-page-390-log")
    page.evaluate("window.scrollTo(0, 0)")
    # Unwrapped: the long line scrolls inside the log; the page itself never scrolls sideways.
    page.get_by_label("Wrap lines").uncheck()
    assert log.evaluate("e => e.scrollWidth > e.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    log.evaluate("e => { e.scrollIntoView(); e.scrollTop = 0; e.scrollLeft = 120; }")
    assert log.evaluate("e => e.scrollLeft") > 0
    shot(page, "job-page-390-nowrap")


FOCUSED = """() => {
  const e = document.activeElement, s = getComputedStyle(e);
  const name = e.getAttribute("aria-label") || (e.labels && e.labels[0] && e.labels[0].textContent)
    || e.getAttribute("placeholder") || e.textContent;
  return { id: e.id, tag: e.tagName, name: (name || "").trim().slice(0, 40),
           ring: e.matches(":focus-visible") && s.outlineStyle !== "none"
                 && parseFloat(s.outlineWidth) >= 2 };
}"""


def test_keyboard_only_use_of_the_job_page(page, live_server, owner, make_job):
    """From the top of the page with Tab alone: every control of the header and the log is
    reached in order with a visible focus ring, and works from the keyboard."""
    job = make_job(status=JobStatus.RUNNING, command="./manage.py migrate")
    add_lines(job, ["boot", "error: disk", "ok", "error again"], start=0)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, live_server, "alice@acme.test", job_url(job))
    expect(page.locator("#L4")).to_be_attached()
    page.evaluate("document.activeElement.blur()")
    reached = []
    for _ in range(80):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        reached.append(focused)
        if focused["id"] == "log-lines":
            break
    names = [f["name"] for f in reached]
    expected = [
        "Copy job ID",
        "Copy command",
        "Notify me when it ends",
        "Copy as API call",
        "Rerun on latest",
        "Rerun exactly",
        "Rerun with changes",
        "Cancel job",
        "Details: build, image, plan, timestamps",
        "Search this job's logs",
        "Search",
        "Download",
        "Find in the lines shown",
        "Previous match",
        "Next match",
        "Timestamps",
        "Wrap lines",
        "Raw",
    ]
    at = [names.index(name) for name in expected]  # each reached ...
    assert at == sorted(at), names  # ... in the order they are shown
    assert reached[-1]["id"] == "log-lines", names  # and the log itself (it scrolls by keys)
    assert all(f["ring"] for f in reached), [f for f in reached if not f["ring"]]

    # The shortcuts: / to find, Enter / Shift+Enter for next and previous, Escape to leave.
    page.keyboard.press("/")
    expect(page.locator("#log-find")).to_be_focused()
    page.keyboard.type("error")
    expect(page.locator("#log-find-count")).to_have_text("1 of 2")
    page.keyboard.press("Enter")
    expect(page.locator("#log-find-count")).to_have_text("2 of 2")
    page.keyboard.press("Shift+Enter")
    expect(page.locator("#log-find-count")).to_have_text("1 of 2")
    page.keyboard.press("Escape")
    expect(page.locator("#log-find")).not_to_be_focused()

    # A copy button, pressed with Enter.
    copy = page.get_by_role("button", name="Copy command")
    copy.focus()
    page.keyboard.press("Enter")
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "./manage.py migrate"

    # The server's search: type and Enter, from the search field reached with Shift+Tab.
    page.get_by_role("button", name="Search", exact=True).focus()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_label("Search this job's logs")).to_be_focused()
    page.keyboard.type("again")
    page.keyboard.press("Enter")
    expect(page.locator(".search-status")).to_contain_text("Lines matching")
    expect(page.locator("#log-lines li.line")).to_have_count(1)

    # Cancel with Space, confirmed with the keyboard (the dialog's OK).
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel job").focus()
    page.keyboard.press("Space")
    expect(page.get_by_role("button", name="Canceling…")).to_be_disabled()
    job.refresh_from_db()
    assert job.cancel_requested_at is not None

    # Rerun on latest with Enter: the new job's page.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rerun on latest").focus()
    page.keyboard.press("Enter")
    expect(page).not_to_have_url(re.compile(rf"/jobs/{job.id}/"))
    rerun = Job.objects.get(rerun_of=job)
    expect(page).to_have_url(re.compile(rf"/jobs/{rerun.id}/$"))

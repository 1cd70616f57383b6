"""Non-text contrast (WCAG 1.4.11) measured in Chromium: the borders of inputs and chips against
what is on both sides of them, and the ``:target`` line's marks against the log's background,
each at least 3:1."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import JobStatus
from tests.helpers import add_lines, sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# For each element: its border colour, its own background and the first opaque background
# behind it (the page's, a card's).
COLOURS = """els => els.map(e => {
  const behind = el => {
    for (let p = el; p; p = p.parentElement) {
      const c = getComputedStyle(p).backgroundColor;
      if (!/rgba\\(.*, 0\\)$/.test(c) && c !== "transparent") return c;
    }
    return "rgb(255, 255, 255)";
  };
  const s = getComputedStyle(e);
  return { what: e.outerHTML.slice(0, 80), border: s.borderTopColor,
           inside: behind(e), outside: behind(e.parentElement) };
})"""


def rgb(text: str) -> tuple[int, int, int]:
    r, g, b = (int(float(v)) for v in re.findall(r"[\d.]+", text)[:3])
    return r, g, b


def luminance(colour: tuple[int, int, int]) -> float:
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(rgb(a)), luminance(rgb(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_the_helper_measures_as_wcag_does():
    assert round(contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)"), 1) == 21.0
    assert round(contrast("rgb(201, 206, 216)", "rgb(255, 255, 255)"), 1) == 1.6  # the old border


def test_input_and_chip_borders_meet_3_to_1(page, live_server, owner, service, make_job):
    make_job(status=JobStatus.FAILED, exit_code=3, reason={"nonZeroExit": 3})
    sign_in(page, live_server, "alice@acme.test", f"/services/{service.id}/jobs/")
    expect(page.locator("#job-rows tr.job")).to_have_count(1)
    selector = (
        "input[type=search], input[type=date], input[type=text], input[type=number], select,"
        " textarea, .chip, .end-chip"
    )
    page.locator("details.overrides summary").click()  # the timeout and env fields too
    found = page.locator(selector).evaluate_all(COLOURS)
    kinds = {re.match(r"<(\w+)", item["what"]).group(1) for item in found}
    assert {"input", "select", "textarea", "label", "span"} <= kinds, kinds
    for item in found:
        for side in ("inside", "outside"):
            ratio = contrast(item["border"], item[side])
            assert ratio >= 3, (item, side, round(ratio, 2))


def test_the_target_lines_marks_meet_3_to_1_on_the_log(page, live_server, owner, make_job):
    job = make_job()
    add_lines(job, [f"line {n}" for n in range(1, 11)], start=0)
    url = f"/services/{job.service_id}/jobs/{job.id}/"
    sign_in(page, live_server, "alice@acme.test", url)
    page.goto(f"{live_server.url}{url}#L5")
    line = page.locator("#L5")
    expect(line).to_have_css("background-color", "rgb(74, 66, 18)")
    log_bg = page.locator("#log-lines").evaluate("e => getComputedStyle(e).backgroundColor")
    shadow = line.evaluate("e => getComputedStyle(e).boxShadow")  # the bar at its left
    bar = re.match(r"rgba?\([^)]*\)", shadow)
    assert bar, shadow
    number = line.locator(".ln").evaluate("e => getComputedStyle(e).color")
    plain = page.locator("#L4 .ln").evaluate("e => getComputedStyle(e).color")
    assert contrast(bar.group(0), log_bg) >= 3, (bar.group(0), log_bg)
    assert contrast(bar.group(0), "rgb(74, 66, 18)") >= 3  # and against the line's own tint
    assert contrast(number, "rgb(74, 66, 18)") >= 3
    assert number != plain  # the line's number stands out from the others too
    text = line.locator(".msg").evaluate("e => getComputedStyle(e).color")
    assert contrast(text, "rgb(74, 66, 18)") >= 4.5  # the line stays readable

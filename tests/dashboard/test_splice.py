"""A log page's lines join the response after the template engine (dashboard.splice): the page is
the same HTML it was when the engine wrote the lines itself, and no text can place a piece."""

import re
from types import SimpleNamespace

import pytest

from dashboard import ansi, splice
from dashboard.templatetags.dashboard import render_log_lines
from jobs.models import JobStatus

E = "\x1b"
HOSTILE = [
    "plain line",
    "<img src=x onerror=alert(1)> & \"quoted\" 'single'",
    f"{E}[1;31mred{E}[0m and after",
    "bell \x07 and \u202eevil",
    "carriage\rreturn",
    "\x01 start of heading",
    "ünïcödé · — ✓",
]


def without_csrf(body: bytes) -> bytes:
    """The page without its CSRF tokens (masked anew for every response)."""
    return re.sub(rb"[A-Za-z0-9]{64}", b"TOKEN", body)


@pytest.mark.parametrize("query", ["", "?q=red", "?line=2"])
def test_the_job_page_is_the_html_the_template_wrote(owner, make_job, login, monkeypatch, query):
    job = make_job(status=JobStatus.SUCCEEDED, lines=HOSTILE * 3)  # no running time
    client = login(owner)
    page = f"/services/{job.service_id}/jobs/{job.id}/{query}"
    spliced = client.get(page).content
    # The same page with the splicer writing each piece where the template asks for it.
    monkeypatch.setattr(splice.Splicer, "hold", lambda self, html: html)
    whole = client.get(page).content
    assert without_csrf(spliced) == without_csrf(whole)
    assert b"\x00" not in spliced.replace(b"\\x00", b"")
    assert b"red" in spliced
    if "q=" not in query:  # a search shows only the lines that match
        assert b"&lt;img src=x onerror=alert(1)&gt;" in spliced


def test_the_log_polls_are_the_html_the_template_wrote(owner, make_job, login, monkeypatch):
    job = make_job(status=JobStatus.RUNNING, lines=HOSTILE * 3)
    client = login(owner)
    logs = f"/services/{job.service_id}/jobs/{job.id}/logs/"
    asks = [{"after": 2, "status": "running"}, {"before": 10}, {"after": 0, "later": 1}]
    spliced = [client.get(logs, ask, HTTP_HX_REQUEST="true").content for ask in asks]
    monkeypatch.setattr(splice.Splicer, "hold", lambda self, html: html)
    whole = [client.get(logs, ask, HTTP_HX_REQUEST="true").content for ask in asks]
    assert [without_csrf(b) for b in spliced] == [without_csrf(b) for b in whole]
    assert all(b"bell" in body for body in spliced)


def test_a_placeholder_of_another_response_is_left_as_text():
    ours, theirs = splice.Splicer(), splice.Splicer()
    forged = theirs.hold("<script>alert(1)</script>")
    held = ours.hold("<li>line</li>")
    page = f"<ul>{held}</ul><p>{forged}</p>"
    assert ours.join(page) == f"<ul><li>line</li></ul><p>{forged}</p>".encode()


def test_a_page_of_usual_lines_is_escaped_at_once_as_line_by_line():
    usual = ["plain", "<b>bold</b> & 'q' \"qq\"", "", "ünïcödé · —", "tab\there"]
    assert ansi.escape_page(usual) == [ansi.render(text) for text in usual]
    assert ansi.escape_page([]) == []
    # A line that needs the renderer (ESC, a control or bidi character, a newline of its own)
    # sends the whole page line by line.
    for odd in (f"{E}[31mred", "bell \x07", "\u202eevil", "two\nlines", "cr\r", "\x00"):
        assert ansi.escape_page(["plain", odd]) is None


def test_a_line_is_the_same_html_on_either_path():
    """A page with one unusual line takes the line by line path for all its lines; each usual
    line alone takes the one-call path: the same HTML."""
    rows = [
        SimpleNamespace(seq=i, stamp="2026-02-01T00:00:00.123", stream=1 + i % 2, text=text)
        for i, text in enumerate(HOSTILE)
    ]
    assert ansi.escape_page([row.text for row in rows]) is None
    page = render_log_lines(rows, "", 1)
    for row in rows:
        assert render_log_lines([row], "", 1) in page

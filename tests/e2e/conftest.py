"""Browser tests: Playwright driving Debian's Chromium against a live server (and, where a job
must really run, a real Celery worker with Docker Engine).

Chromium cannot be downloaded here, so the system one is launched; without it the tests call
``missing_part`` (fail in CI, skip on a laptop). Screenshots go to tests/e2e/screenshots/
(git-ignored) for people to look at.
"""

import os
from pathlib import Path

import pytest

from tests.conftest import missing_part
from tests.dashboard.conftest import build, make_job  # noqa: F401 - makers of the view tests
from tests.jobs.conftest import (  # noqa: F401 - fixtures shared with the runner's tests
    busybox_build,
    live_worker,
    runner_instance,
)

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# browser steps are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
TIMEOUT_MS = 15_000


def chromium() -> str:
    """The system Chromium (a missing part when absent)."""
    if not os.path.exists(CHROMIUM):
        missing_part(f"Chromium is needed for browser tests ({CHROMIUM} is missing)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        missing_part(f"the playwright package is needed for browser tests: {exc}")
    return CHROMIUM


@pytest.fixture
def page(request):
    """A Chromium page, started for one test and stopped after it.

    Playwright's sync API runs an asyncio loop in this thread while it is started, and while a
    loop runs Django hands out other database connections (asgiref's Local switches to context
    storage). So the test database is set up (and its seeded rows restored) before Playwright
    starts, the connections opened meanwhile are closed before it stops, and no loop is left
    running into the tests that come after."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    executable = chromium()
    request.getfixturevalue("db")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            connections.close_all()


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in(page, live_server, email: str, next_path: str = "/"):
    page.goto(f"{live_server.url}{next_path}")
    page.get_by_label("Email or username").fill(email)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

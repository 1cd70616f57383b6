"""Browser tests: Playwright driving Debian's Chromium against a live server (and, where a job
must really run, a real Celery worker with Docker Engine).

Chromium cannot be downloaded here, so the system one is launched; without it the tests call
``missing_part`` (fail in CI, skip on a laptop). Screenshots go to tests/e2e/screenshots/
(git-ignored) for people to look at.
"""

import importlib
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


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        missing_part(f"Chromium is needed for browser tests ({CHROMIUM} is missing)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing_part(f"the playwright package is needed for browser tests: {exc}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.dialogs = []
    yield page
    context.close()


@pytest.fixture(autouse=True)
def seeded_plans(request):
    """The seeded plans, whatever ran before: a transactional test's flush removes them, and the
    serialized rollback did not always bring them back when other tests ran first in the session."""
    request.getfixturevalue("db")
    from django.apps import apps

    seed = importlib.import_module("services.migrations.0002_seed_plans").seed
    seed(apps, None)


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

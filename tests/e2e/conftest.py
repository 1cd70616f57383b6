"""Browser tests: Playwright driving Debian's Chromium against a live server (and, where a job
must really run, a real Celery worker with Docker Engine).

Chromium cannot be downloaded here, so the system one is launched; without it the tests call
``missing_part`` (fail in CI, skip on a laptop). Screenshots go to tests/e2e/screenshots/
(git-ignored) for people to look at.
"""

import os

import pytest

from tests.helpers import CHROMIUM_ARGS, TIMEOUT_MS, chromium

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# browser steps are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


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

"""Errors that never leak: a styled 500 with a reference id in the server log, no debug page, no
credentials in an error report; styled 403/404 in the dashboard frame, alerts for htmx partials."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from config.reporting import CredentialFilter

ROOT = Path(__file__).resolve().parent.parent
SECRET_URLS = {
    "DATABASE_URL": "postgres://oneoff:db-password-123@db.internal:5432/oneoff",
    "CELERY_BROKER_URL": "redis://:broker-password-456@redis.internal:6379/0",
    "CACHE_URL": "redis://:cache-password-789@redis.internal:6379/1",
}


@pytest.fixture
def signed_in(owner):
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    return client


@pytest.mark.urls("tests.error_urls")
def test_a_server_error_is_the_styled_page_with_a_reference_in_the_log(signed_in, caplog):
    with caplog.at_level(logging.ERROR):
        response = signed_in.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body
    assert 'class="topbar"' in body  # the dashboard frame, with navigation
    reference = re.search(r'<code class="reference">([0-9a-f]{12})</code>', body).group(1)
    assert any(reference in record.getMessage() for record in caplog.records)
    assert "Traceback" not in body
    assert "forced failure" not in body
    assert "SECRET_KEY" not in body


@pytest.mark.urls("tests.error_urls")
def test_even_with_debug_on_the_report_hides_credential_urls(signed_in, settings):
    settings.DEBUG = True
    for name, value in SECRET_URLS.items():
        setattr(settings, name, value)
    response = signed_in.get("/boom/", headers={"accept": "text/html"})
    assert response.status_code == 500
    body = response.content.decode()
    for secret in ("db-password-123", "broker-password-456", "cache-password-789"):
        assert secret not in body


def test_the_filter_hides_url_settings_and_userinfo_anywhere(settings):
    for name, value in SECRET_URLS.items():
        setattr(settings, name, value)
    settings.SOME_MIRROR = "see https://user:tok3n@git.example/repo.git"
    safe = CredentialFilter().get_safe_settings()
    text = repr(safe)
    for secret in ("db-password-123", "broker-password-456", "cache-password-789", "tok3n"):
        assert secret not in text


def test_unknown_pages_and_foreign_objects_are_styled_404s(signed_in, other_workspace):
    for url in ("/no-such-page/", f"/workspaces/{other_workspace.id}/"):
        response = signed_in.get(url)
        assert response.status_code == 404
        body = response.content.decode()
        assert "Not found" in body
        assert 'class="topbar"' in body


def test_an_htmx_error_is_an_alert_not_a_swapped_page(signed_in):
    response = signed_in.get("/no-such-page/", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/plain")
    assert "Not found" in response.content.decode()


def test_check_deploy_is_clean_at_the_documented_production_settings(tmp_path):
    # As a server's environment is: without what the browser tests set for themselves.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(DEBUG="false", HTTPS="true", ONEOFF_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout

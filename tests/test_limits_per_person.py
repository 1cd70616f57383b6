"""Limits per person: job creations from the dashboard and the API count in one bucket per user
and per workspace. Counters live in the real shared cache (Redis through CACHE_URL)."""

import socket

import pytest
from django.core.cache import cache

from jobs.models import Job
from services.models import ApiKey
from tests.helpers import ApiClient, htmx


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()


def api_for(user, workspace) -> ApiClient:
    key, secret = ApiKey.issue(user, workspace)
    return ApiClient(secret, key)


def signed_in(client, user):
    client.force_login(user)
    return client


def run_url(service):
    return f"/services/{service.id}/jobs/run/"


def run_body(service):
    return {"start_command": "echo hi", "plan": service.plan_id}


# Job creations: one bucket for both faces ------------------------------------------------------


def test_dashboard_runs_and_api_creates_share_one_bucket(owner, service, build, client, settings):
    settings.API_RATE_LIMIT_JOB_CREATE = "3/h"
    api = api_for(owner, service.workspace)
    page = signed_in(client, owner)
    assert page.post(run_url(service), run_body(service)).status_code == 302
    assert api.post(f"/v1/services/{service.id}/jobs", {"startCommand": "true"}).status_code == 201
    assert page.post(run_url(service), run_body(service)).status_code == 302
    # The API's next create finds the user's bucket spent by the dashboard's two runs.
    r = api.post(f"/v1/services/{service.id}/jobs", {"startCommand": "true"})
    assert r.status_code == 429
    assert "job creations per user" in r.json()["message"]
    # And the dashboard's next run finds it spent too: an alert, no job.
    r = page.post(run_url(service), run_body(service), **htmx("run-job"))
    assert r.status_code == 429
    assert r["Content-Type"].startswith("text/plain")  # static/js/app.js shows it as an alert
    assert "Too many requests: rate limit of 3/h job creations per user exceeded" in r.text
    assert 1 <= int(r["Retry-After"]) <= 3600
    assert Job.objects.count() == 3


def test_a_full_page_run_over_the_limit_is_a_styled_429(owner, service, build, client, settings):
    settings.API_RATE_LIMIT_JOB_CREATE = "1/h"
    page = signed_in(client, owner)
    assert page.post(run_url(service), run_body(service)).status_code == 302
    r = page.post(run_url(service), run_body(service))
    assert r.status_code == 429
    assert "job creations per user exceeded" in r.text
    assert '<div id="alerts"' in r.text  # the dashboard frame, not a bare text
    assert Job.objects.count() == 1


def test_reruns_count_in_the_same_bucket(owner, developer, make_job, client, settings):
    settings.API_RATE_LIMIT_JOB_CREATE = "100/h"
    settings.API_RATE_LIMIT_WORKSPACE_JOB_CREATE = "2/h"
    job = make_job()
    rerun = f"/services/{job.service_id}/jobs/{job.id}/rerun/"
    assert signed_in(client, owner).post(rerun).status_code == 302
    api = api_for(developer, job.workspace)
    assert api.post(f"/v1/services/{job.service_id}/jobs", {"startCommand": "x"}).status_code == 201
    r = signed_in(client, developer).post(rerun, **htmx("job-rows"))
    assert r.status_code == 429
    assert "job creations per workspace" in r.text
    assert Job.objects.count() == 3


def test_another_workspace_runs_while_one_is_limited(
    owner, outsider, service, build, make_service, make_build, other_workspace, client, settings
):
    settings.API_RATE_LIMIT_WORKSPACE_JOB_CREATE = "1/h"
    theirs = make_service(other_workspace, name="theirs")
    make_build(theirs)
    assert signed_in(client, owner).post(run_url(service), run_body(service)).status_code == 302
    assert signed_in(client, owner).post(run_url(service), run_body(service)).status_code == 429
    assert signed_in(client, outsider).post(run_url(theirs), run_body(theirs)).status_code == 302


def test_dashboard_runs_are_served_while_the_cache_is_down(owner, service, build, client, settings):
    settings.API_RATE_LIMIT_JOB_CREATE = "1/h"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    page = signed_in(client, owner)
    assert page.post(run_url(service), run_body(service)).status_code == 302
    assert page.post(run_url(service), run_body(service)).status_code == 302
    assert Job.objects.count() == 2

"""Limits per person: job creations from the dashboard and the API count in one bucket per user
and per workspace, and a tenant cannot mint API keys without bound. Counters live in the real
shared cache (Redis through CACHE_URL), keys in the real database."""

import socket
import threading

import pytest
from django.core.cache import cache
from django.db import connection

from jobs.models import Job
from services.apikeys import create_key
from services.errors import Limited, Refused
from services.models import ApiKey, Membership, Role
from tests.helpers import ApiClient, htmx, make_member


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


# Key creation caps: the dashboard and the management command -----------------------------------


def keys_url(workspace):
    return f"/workspaces/{workspace.id}/api-keys/"


def test_the_dashboard_caps_the_keys_a_user_creates_per_hour(
    owner, developer, workspace, client, settings
):
    settings.API_KEYS_PER_HOUR = 2
    page = signed_in(client, owner)
    assert page.post(keys_url(workspace), {"name": "a"}).status_code == 302
    assert page.post(keys_url(workspace), {"name": "b"}).status_code == 302
    r = page.post(keys_url(workspace), {"name": "c"})
    assert r.status_code == 429
    assert "at most 2 API keys an hour" in r.text
    assert 'class="secret-value"' not in r.text
    assert 3000 <= int(r["Retry-After"]) <= 3600
    # Revoking does not give the hour's budget back; another member has their own.
    ApiKey.objects.update(revoked_at="2026-01-01T00:00Z")
    assert page.post(keys_url(workspace), {"name": "d"}).status_code == 429
    assert signed_in(client, developer).post(keys_url(workspace), {"name": "e"}).status_code == 302
    assert ApiKey.objects.filter(user=owner).count() == 2


def test_the_dashboard_caps_the_active_keys_of_a_workspace(
    owner, developer, viewer, workspace, client, settings
):
    settings.API_KEYS_PER_WORKSPACE = 2
    ApiKey.issue(developer, workspace)
    ApiKey.issue(viewer, workspace)
    page = signed_in(client, owner)
    r = page.post(keys_url(workspace), {"name": "third"})
    assert r.status_code == 400
    assert "holds 2 active API keys, the most allowed is 2" in r.text
    assert ApiKey.objects.count() == 2
    # A revoked key frees its place.
    ApiKey.objects.filter(user=viewer).update(revoked_at="2026-01-01T00:00Z")
    assert page.post(keys_url(workspace), {"name": "third"}).status_code == 302


def run_command(*args):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("createapikey", *args, stdout=out)
    return out.getvalue().splitlines()


def test_the_command_caps_the_keys_a_user_creates_per_hour(owner, workspace, settings):
    from django.core.management import CommandError

    settings.API_KEYS_PER_HOUR = 2
    run_command(owner.email, "--workspace", workspace.name)
    run_command(owner.email, "--workspace", workspace.name)
    with pytest.raises(CommandError, match="at most 2 API keys an hour"):
        run_command(owner.email, "--workspace", workspace.name)
    assert ApiKey.objects.count() == 2


def test_the_command_caps_the_active_keys_of_a_workspace(owner, developer, workspace, settings):
    from django.core.management import CommandError

    settings.API_KEYS_PER_WORKSPACE = 1
    ApiKey.issue(developer, workspace)
    with pytest.raises(CommandError, match="holds 1 active API key, the most allowed is 1"):
        run_command(owner.email, "--workspace", workspace.name)
    assert ApiKey.objects.count() == 1


def test_the_per_hour_cap_spans_a_users_workspaces(owner, workspace, other_workspace, settings):
    settings.API_KEYS_PER_HOUR = 1
    Membership.objects.create(workspace=other_workspace, user=owner, role=Role.ADMIN)
    create_key(owner, workspace)
    with pytest.raises(Limited):
        create_key(owner, other_workspace)


@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_cannot_pass_the_caps_together(workspace, settings):
    """Eight threads at once, each its own PostgreSQL connection: the row locks let exactly as
    many through as each cap allows."""
    settings.API_KEYS_PER_HOUR = 3
    settings.API_KEYS_PER_WORKSPACE = 5
    people = [make_member(workspace, f"p{i}@acme.test", Role.DEVELOPER) for i in range(2)]
    outcomes: list[str] = []
    start = threading.Barrier(16)

    def attempt(user):
        try:
            start.wait()
            create_key(user, workspace)
            outcomes.append("created")
        except (Limited, Refused) as error:
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(p,)) for p in people for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_user = [ApiKey.objects.filter(user=p).count() for p in people]
    assert sum(per_user) == 5  # the workspace's cap
    assert max(per_user) <= 3  # each user's cap
    assert outcomes.count("created") == 5

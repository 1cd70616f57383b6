"""Rate limits per key, per user and per workspace, counted in the shared cache (Redis when
CACHE_URL is set)."""

import socket

from django.core.cache import caches

from tests.helpers import assert_error


def test_reads_carry_the_headers_and_count_down(owner_api):
    first = owner_api.get("/v1/services")
    second = owner_api.get("/v1/services")
    assert first["Ratelimit-Limit"] == "400"
    assert int(first["Ratelimit-Remaining"]) == 399
    assert int(second["Ratelimit-Remaining"]) == 398
    assert 0 <= int(first["Ratelimit-Reset"]) <= 60


def test_errors_of_a_limited_request_carry_the_headers(owner_api):
    r = owner_api.get("/v1/services/srv-00000000000000000000")
    assert r.status_code == 404
    assert r["Ratelimit-Remaining"] == "399"


def test_too_many_reads_are_429_with_retry_after(owner_api, settings):
    settings.API_RATE_LIMIT_READ = "3/m"
    for _ in range(3):
        assert owner_api.get("/v1/services").status_code == 200
    r = owner_api.get("/v1/services")
    assert_error(r, 429, id="rate_limited")
    assert r["Ratelimit-Remaining"] == "0"
    assert 1 <= int(r["Retry-After"]) <= 60


def test_limits_are_per_key(owner_api, developer_api, settings):
    settings.API_RATE_LIMIT_READ = "1/m"
    assert owner_api.get("/v1/services").status_code == 200
    assert owner_api.get("/v1/services").status_code == 429
    assert developer_api.get("/v1/services").status_code == 200


def test_writes_and_job_creations_have_their_own_limits(owner_api, built_service, settings):
    settings.API_RATE_LIMIT_WRITE = "1/m"
    settings.API_RATE_LIMIT_JOB_CREATE = "2/h"
    url = f"/v1/services/{built_service.id}/jobs"
    assert owner_api.post(url, {"startCommand": "true"})["Ratelimit-Limit"] == "2"
    assert owner_api.post(url, {"startCommand": "true"}).status_code == 201
    r = owner_api.post(url, {"startCommand": "true"})
    assert_error(r, 429)
    assert int(r["Retry-After"]) <= 3600
    # Other writes are counted apart.
    w = owner_api.put(f"/v1/services/{built_service.id}/env-vars/A", {"value": "1"})
    assert w.status_code == 200
    assert w["Ratelimit-Limit"] == "1"
    assert (
        owner_api.put(f"/v1/services/{built_service.id}/env-vars/A", {"value": "1"}).status_code
        == 429
    )


def test_counters_live_in_a_cache_every_web_process_shares(owner_api, settings):
    settings.API_RATE_LIMIT_READ = "2/m"
    owner_api.get("/v1/services")
    # Redis (CACHE_URL) or the database cache, never a per-process memory cache.
    assert type(caches["default"]).__name__ in ("RedisCache", "DatabaseCache")
    owner_api.get("/v1/services")
    assert owner_api.get("/v1/services").status_code == 429


# Per person and per workspace: a request counts against its key, its key's user and its
# workspace; minting keys multiplies nothing.


def test_keys_minted_by_one_user_share_that_users_budget(make_client, owner, workspace, settings):
    settings.API_RATE_LIMIT_READ = "3/m"  # the user's rate defaults to the key's
    keys = [make_client(owner, workspace) for _ in range(12)]
    assert [keys[i].get("/v1/services").status_code for i in range(3)] == [200, 200, 200]
    for fresh in keys[3:]:
        r = fresh.get("/v1/services")
        assert_error(r, 429, id="rate_limited")
        assert "per user" in r.json()["message"]
    assert r["Ratelimit-Limit"] == "3"
    assert r["Ratelimit-Remaining"] == "0"


def test_a_workspace_budget_spans_its_members_and_no_other_workspace(
    owner_api, developer_api, viewer_api, outsider_api, settings
):
    settings.API_RATE_LIMIT_WORKSPACE_READ = "4/m"
    for api in (owner_api, owner_api, developer_api, developer_api):
        assert api.get("/v1/services").status_code == 200
    r = viewer_api.get("/v1/services")
    assert_error(r, 429, id="rate_limited")
    assert "per workspace" in r.json()["message"]
    # Another workspace's budget is its own.
    assert outsider_api.get("/v1/services").status_code == 200
    assert outsider_api.get("/v1/services")["Ratelimit-Remaining"] == "2"


def test_the_workspace_rate_defaults_to_five_times_the_keys(make_client, workspace, settings):
    from tests.helpers import make_member

    settings.API_RATE_LIMIT_READ = "2/m"
    people = [make_member(workspace, f"p{i}@acme.test", "developer") for i in range(6)]
    answers = [
        make_client(p, workspace).get("/v1/services").status_code for p in people for _ in (1, 2)
    ]
    assert answers == [200] * 10 + [429, 429]


def test_headers_report_the_tightest_bucket(owner_api, settings):
    settings.API_RATE_LIMIT_USER_READ = "2/m"  # tighter than the key's 400/m
    first = owner_api.get("/v1/services")
    assert (first["Ratelimit-Limit"], first["Ratelimit-Remaining"]) == ("2", "1")
    owner_api.get("/v1/services")
    r = owner_api.get("/v1/services")
    assert_error(r, 429, id="rate_limited")
    assert r.json()["message"].startswith("rate limit of 2/m reads per user exceeded")
    assert 1 <= int(r["Retry-After"]) <= 60


def test_job_creations_count_per_user_across_keys(
    make_client, owner, workspace, built_service, settings
):
    settings.API_RATE_LIMIT_JOB_CREATE = "2/h"
    url = f"/v1/services/{built_service.id}/jobs"
    assert make_client(owner, workspace).post(url, {"startCommand": "true"}).status_code == 201
    assert make_client(owner, workspace).post(url, {"startCommand": "true"}).status_code == 201
    r = make_client(owner, workspace).post(url, {"startCommand": "true"})
    assert_error(r, 429, id="rate_limited")
    assert "job creations per user" in r.json()["message"]


def test_requests_are_served_while_the_cache_is_down(owner_api, built_service, settings, caplog):
    settings.API_RATE_LIMIT_READ = "1/m"
    with socket.socket() as probe:  # a loopback port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    for _ in range(3):
        r = owner_api.get("/v1/services")
        assert r.status_code == 200
        assert "Ratelimit-Limit" not in r
    r = owner_api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "true"})
    assert r.status_code == 201
    assert "rate-limit cache unavailable" in caplog.text

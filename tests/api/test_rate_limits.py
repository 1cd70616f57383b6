"""Rate limits per key, counted in the shared cache (Redis when CACHE_URL is set)."""

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

"""services.limits in small: rates, the bucket that binds, the two ways of counting, and a cache
that does not answer."""

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django_ratelimit.core import get_usage
from redis.exceptions import TimeoutError as RedisTimeout

from services import limits
from services.limits import Bucket, Usage


@pytest.fixture(autouse=True)
def _fresh_counters():
    caches["default"].clear()


def test_user_and_workspace_rates_follow_the_keys_unless_set(settings):
    settings.API_RATE_LIMIT_READ = "7/m"
    assert limits.rate_for("read", "key") == "7/m"
    assert limits.rate_for("read", "user") == "7/m"
    assert limits.rate_for("read", "workspace") == "35/m"
    settings.API_RATE_LIMIT_USER_READ = "5/m"
    settings.API_RATE_LIMIT_WORKSPACE_READ = "9/h"
    assert limits.rate_for("read", "user") == "5/m"
    assert limits.rate_for("read", "workspace") == "9/h"


def usage(scope, count, limit, reset):
    return Usage(Bucket("read", scope, scope, f"{limit}/m"), count, limit, reset)


def test_the_tightest_bucket_is_an_exceeded_one_then_the_fewest_remaining():
    key, user, ws = usage("key", 3, 10, 50), usage("user", 8, 10, 20), usage("workspace", 9, 50, 5)
    assert limits.tightest([key, user, ws]) is user
    # Spent without being exceeded loses to exceeded; of two exceeded, the later reset wins.
    spent = usage("key", 10, 10, 59)
    over_soon = usage("user", 11, 10, 3)
    over_late = usage("workspace", 51, 50, 30)
    assert limits.tightest([spent, over_soon, over_late]) is over_late


def test_the_redis_pipeline_counts_in_django_ratelimits_own_keys(settings):
    """One round trip for every bucket, yet the very counters get_usage reads."""
    assert type(caches["default"]).__name__ == "RedisCache"
    buckets = [Bucket("read", "user", "u-1", "5/m"), Bucket("read", "workspace", "w-1", "9/h")]
    assert [u.count for u in limits.count(buckets)] == [1, 1]
    assert [u.count for u in limits.count(buckets)] == [2, 2]
    seen = get_usage(None, group="oneoff-user-read", key=lambda g, r: "u-1", rate="5/m")
    assert seen["count"] == 2
    first = limits.count(buckets)
    assert [u.limit for u in first] == [5, 9]
    assert 0 <= first[0].reset <= 60
    assert 0 <= first[1].reset <= 3600


class BrokenCache(LocMemCache):
    """A cache whose server is gone: every call raises what redis-py raises."""

    def add(self, *args, **kwargs):
        raise RedisTimeout("Timeout reading from socket")

    incr = get = add


def test_a_cache_that_raises_counts_nothing_and_refuses_nothing(settings, caplog):
    settings.CACHES = {"default": {"BACKEND": f"{__name__}.BrokenCache"}}
    settings.API_RATE_LIMIT_READ = "1/m"
    buckets = [Bucket("read", "user", "u-2", "1/m")]
    assert limits.count(buckets) is None
    assert "rate-limit cache unavailable" in caplog.text

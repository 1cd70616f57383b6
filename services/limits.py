"""Rate limits per API key, per person and per workspace, counted in the shared cache.

A request counts in every bucket of its kind (``read``, ``write``, ``job_create``) that applies:
its API key's, its user's (the key's owner; on the dashboard the signed-in member) and its
workspace's. So a user's budget is the same however many keys they mint, and a workspace's
bounds what all its members do together. The dashboard's Run job form and rerun count in the
same ``job_create`` buckets of the user and the workspace as ``POST /v1/services/{id}/jobs``.

Rates are settings: ``API_RATE_LIMIT_<KIND>`` per key, ``API_RATE_LIMIT_USER_<KIND>`` and
``API_RATE_LIMIT_WORKSPACE_<KIND>``. An empty user rate is the key's; an empty workspace rate is
``WORKSPACE_FACTOR`` times the key's (read when counting, so a change of the key's rate moves
both).

The counters are django-ratelimit's fixed windows (its cache keys, and its windows with their
per-bucket jitter). On Django's RedisCache every bucket of a request is counted in one pipelined
round trip; on any other cache through django-ratelimit's ``get_usage``, which costs three round
trips a bucket on Redis (``add``, then ``incr``'s ``EXISTS`` and ``INCR``). When the cache does not
answer, the request is served uncounted with a logged warning: an outage of the cache must not
turn every request into an error.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import DatabaseError
from django_ratelimit.core import (
    ALL,
    EXPIRATION_FUDGE,
    _get_window,
    _make_cache_key,
    _split_rate,
    get_usage,
)

from services.errors import Limited
from services.models import ApiKey, Workspace

try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis comes with celery[redis]

    class RedisError(Exception):  # type: ignore[no-redef]
        pass


log = logging.getLogger(__name__)

KINDS = {"read": "reads", "write": "writes", "job_create": "job creations"}
SCOPES = {"key": "per API key", "user": "per user", "workspace": "per workspace"}
WORKSPACE_FACTOR = 5

# What a cache that does not answer raises: redis-py's errors (ConnectionError, TimeoutError,
# BusyLoadingError ...) on Redis, a DatabaseError on the database cache, an OSError from a socket.
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, DatabaseError, OSError)


def rate_for(kind: str, scope: str) -> str:
    """The rate (``count/period``) of one kind of request in one scope's bucket."""
    per_key = getattr(settings, f"API_RATE_LIMIT_{kind.upper()}")
    if scope == "key":
        return per_key
    own = getattr(settings, f"API_RATE_LIMIT_{scope.upper()}_{kind.upper()}", "")
    if own:
        return own
    if scope == "user":
        return per_key
    count, _, period = per_key.partition("/")
    return f"{int(count) * WORKSPACE_FACTOR}/{period}"


@dataclass(frozen=True)
class Bucket:
    kind: str  # read, write, job_create
    scope: str  # key, user, workspace
    value: str  # whose bucket: stable, and never reused by another key, user or workspace
    rate: str

    @property
    def group(self) -> str:
        return f"oneoff-{self.scope}-{self.kind}"


@dataclass(frozen=True)
class Usage:
    """One bucket after this request: ``count`` requests so far in a window that ends in
    ``reset`` seconds."""

    bucket: Bucket
    count: int
    limit: int
    reset: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    @property
    def message(self) -> str:
        what = f"{KINDS[self.bucket.kind]} {SCOPES[self.bucket.scope]}"
        return f"rate limit of {self.bucket.rate} {what} exceeded; retry in {max(1, self.reset)} s"


def _user_value(user: AbstractBaseUser) -> str:
    # The join time makes the value unique for good: a test database that restarts its ids
    # never finds an earlier run's counters under a new user.
    joined = getattr(user, "date_joined", None)
    return f"{user.pk}.{joined.timestamp() if joined else ''}"


def buckets_for(
    kind: str, *, user: AbstractBaseUser, workspace: Workspace, api_key: ApiKey | None = None
) -> list[Bucket]:
    """The buckets one request of ``kind`` counts in: the key's (API only), the user's and the
    workspace's."""
    found = [
        Bucket(kind, "user", _user_value(user), rate_for(kind, "user")),
        Bucket(kind, "workspace", workspace.id, rate_for(kind, "workspace")),
    ]
    if api_key is not None:
        # Part of the key's hash: unique per key, and not reused when a test database restarts ids.
        found.insert(0, Bucket(kind, "key", api_key.key_hash[:24], rate_for(kind, "key")))
    return found


def count(buckets: Sequence[Bucket]) -> list[Usage] | None:
    """Count one request in every bucket; None when the cache did not answer (or django-ratelimit
    is switched off with ``RATELIMIT_ENABLE = False``)."""
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    try:
        # The cache django-ratelimit would use (RATELIMIT_USE_CACHE, "default" unless set).
        cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
        usages = (
            _count_on_redis(cache, buckets)
            if isinstance(cache, RedisCache)
            else _count_with_get_usage(buckets)
        )
    except CACHE_ERRORS as error:
        log.warning("rate-limit cache unavailable; request not counted (%s)", error)
        return None
    if usages is None:
        log.warning("rate-limit cache unavailable; request not counted (no count returned)")
    return usages


def _count_on_redis(redis_cache: RedisCache, buckets: Sequence[Bucket]) -> list[Usage]:
    """``SET key 0 EX ttl NX`` then ``INCR key`` for each bucket, in one pipeline: the same keys,
    windows and expiry as django-ratelimit's ``get_usage(increment=True)``."""
    # Every write goes to the first server (RedisCacheClient), as Django's own set_many does.
    pipe = redis_cache._cache.get_client(write=True).pipeline(transaction=False)
    windows = []
    for bucket in buckets:
        limit, period = _split_rate(bucket.rate)
        window = _get_window(bucket.value, period)
        key = _make_cache_key(bucket.group, window, bucket.rate, bucket.value, ALL)
        key = redis_cache.make_and_validate_key(key)
        pipe.set(key, 0, ex=period + EXPIRATION_FUDGE, nx=True)
        pipe.incr(key)
        windows.append((limit, window))
    counts = pipe.execute()[1::2]
    now = int(time.time())
    return [
        Usage(bucket, int(hits), limit, window - now)
        for bucket, hits, (limit, window) in zip(buckets, counts, windows, strict=True)
    ]


def _count_with_get_usage(buckets: Sequence[Bucket]) -> list[Usage] | None:
    usages = []
    for bucket in buckets:
        usage = get_usage(
            None,
            group=bucket.group,
            key=lambda group, request, value=bucket.value: value,
            rate=bucket.rate,
            increment=True,
        )
        if usage is None:  # RATELIMIT_ENABLE = False
            continue
        if usage["limit"] == 0 and usage["time_left"] == -1:
            return None  # get_usage's answer when the cache gave no count back
        usages.append(Usage(bucket, usage["count"], usage["limit"], usage["time_left"]))
    return usages


def tightest(usages: Sequence[Usage]) -> Usage:
    """The bucket that binds: an exceeded one first, then the fewest requests remaining, then
    the one whose window ends last (its reset is when the next request may pass)."""
    return min(usages, key=lambda u: (not u.exceeded, u.remaining, -u.reset))


def hit(
    kind: str, *, user: AbstractBaseUser, workspace: Workspace, api_key: ApiKey | None = None
) -> Usage | None:
    """Count one request of ``kind`` in its buckets and return the tightest (``.exceeded`` when
    the request must be refused), or None when nothing was counted (the cache is down)."""
    usages = count(buckets_for(kind, user=user, workspace=workspace, api_key=api_key))
    return tightest(usages) if usages else None


def enforce(
    kind: str, *, user: AbstractBaseUser, workspace: Workspace, api_key: ApiKey | None = None
) -> Usage | None:
    """``hit``, raising ``Limited`` when a bucket is exceeded."""
    usage = hit(kind, user=user, workspace=workspace, api_key=api_key)
    if usage is not None and usage.exceeded:
        raise Limited(usage.message, retry_after=usage.reset)
    return usage

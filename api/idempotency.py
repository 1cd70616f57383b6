"""``Idempotency-Key`` for create endpoints (beyond Render).

The same key and body within 24 h answers the first response (same status and body) and does
nothing new; the same key with another body is a 422. Concurrent duplicates do the work once: the
first request inserts the key row (unique on workspace, scope and key) before doing anything, and
every other one finds the row and waits for the response stored on it.
"""

import hashlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import cast

from django.db import IntegrityError, transaction
from django.utils import timezone

from api.auth import ApiRequest
from api.errors import ApiError, bad_request
from jobs.models import IdempotencyKey

HEADER = "Idempotency-Key"
KEEP = IdempotencyKey.KEEP
# A row without a response this old belongs to a request that died mid-way: take it over.
ABANDONED = timedelta(seconds=60)
WAIT_SECONDS = 15.0
POLL_SECONDS = 0.05


def request_hash(body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent(
    request: ApiRequest, scope: str, body: dict, run: Callable[[], tuple[int, dict]]
) -> tuple[int, dict]:
    """``run()`` once per (workspace, scope, Idempotency-Key); ``(status, body)`` every time."""
    key = request.headers.get(HEADER)
    if key is None:
        return run()
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise bad_request(HEADER, "must be 1 to 255 printable characters")
    workspace = request.auth.workspace
    digest = request_hash(body)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        row = _claim(workspace, scope, key, digest)
        if row is None:
            return _run_and_store(workspace, scope, key, run)
        if row.request_hash != digest:
            raise ApiError(
                422,
                "idempotency_key_reused",
                f"{HEADER} {key!r} was already used with a different request body in the last "
                "24 hours; use a new key for a new request",
            )
        if row.status_code is not None:
            # Stored with the status code in one UPDATE (_run_and_store): a body, not None.
            return row.status_code, cast(dict, row.response)
        if time.monotonic() > deadline:
            raise ApiError(
                409, "conflict", f"a request with {HEADER} {key!r} is still in progress; retry"
            )
        time.sleep(POLL_SECONDS)


def _claim(workspace, scope: str, key: str, digest: str) -> IdempotencyKey | None:
    """Insert the key row (None: this request does the work), or return the row already there."""
    try:
        with transaction.atomic():
            IdempotencyKey.objects.create(
                workspace=workspace, scope=scope, key=key, request_hash=digest
            )
        return None
    except IntegrityError:
        pass
    row = IdempotencyKey.objects.filter(workspace=workspace, scope=scope, key=key).first()
    if row is None:  # the first request failed and let go of the key: try again
        return _claim(workspace, scope, key, digest)
    now = timezone.now()
    expired = row.created_at < now - KEEP
    abandoned = row.status_code is None and row.created_at < now - ABANDONED
    if expired or abandoned:
        IdempotencyKey.objects.filter(pk=row.pk, created_at=row.created_at).delete()
        return _claim(workspace, scope, key, digest)
    return row


def _run_and_store(workspace, scope: str, key: str, run) -> tuple[int, dict]:
    rows = IdempotencyKey.objects.filter(workspace=workspace, scope=scope, key=key)
    try:
        with transaction.atomic():
            status, data = run()
            rows.update(status_code=status, response=data)
    except BaseException:
        # Failed requests are not remembered: a retry with the same key may succeed.
        rows.filter(status_code__isnull=True).delete()
        raise
    return status, data

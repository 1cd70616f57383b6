"""Who is asking, what their role lets them do, and how often they may ask.

Every operation of every router added in ``api.api`` sits behind ``ApiKeyAuth`` (set on the
NinjaAPI itself), so a router needs nothing to get authentication and rate limits. Inside a view:

- ``request.auth`` is the ``services.models.ApiKey`` that signed the request, with
  ``.workspace``, ``.user``, ``.read_only`` and, set here, ``.role`` (the user's
  ``Membership.role`` in that workspace). A key whose user is no longer a member of its workspace
  is a 401 before any view runs.
- ``require_write(request)`` raises a 403 for a viewer or a read-only key;
  ``require_admin(request)`` also for a developer. The role rule itself is the domain's
  (``services.access.check_role``).
- Rate limits (``services.limits``: settings ``API_RATE_LIMIT_*``, counted per key, per the
  key's user and per workspace in the default cache shared by every web process): GET/HEAD count
  as reads, other methods as writes; an operation declared with
  ``auth=ApiKeyAuth(bucket="job_create")`` counts against the job-creation limits instead (the
  dashboard's runs count in the same user and workspace buckets). Every authenticated response
  carries ``Ratelimit-Limit``, ``Ratelimit-Remaining`` and ``Ratelimit-Reset`` of the tightest
  bucket (``api.responses``); a 429 also ``Retry-After``.
"""

from typing import cast

from django.http import HttpRequest
from ninja.security import HttpBearer

from api.errors import ApiError
from services import limits
from services.access import ADMIN, WRITE, check_role
from services.models import ApiKey


class ApiRequest(HttpRequest):
    """The request a view of an authenticated operation gets (set by ``ApiKeyAuth``)."""

    auth: ApiKey
    ratelimit_headers: dict[str, str]


# Roles ---------------------------------------------------------------------------------------


def _require(request: ApiRequest, need: str) -> None:
    if request.auth.read_only:
        raise ApiError(403, "forbidden", "this API key is read-only")
    check_role(request.auth.role, need)


def require_write(request: ApiRequest) -> None:
    _require(request, WRITE)


def require_admin(request: ApiRequest) -> None:
    _require(request, ADMIN)


# Authentication and rate limits ---------------------------------------------------------------


def check_rate_limit(request: ApiRequest, bucket: str) -> None:
    """Count the request in its key's, its user's and its workspace's ``bucket``
    (``services.limits``); the headers report the tightest of the three, and a 429 the one that
    refused."""
    key = request.auth
    usage = limits.hit(bucket, user=key.user, workspace=key.workspace, api_key=key)
    if usage is None:
        return  # the cache did not answer (logged): serve rather than refuse every request
    reset = max(0, usage.reset)
    request.ratelimit_headers = {
        "Ratelimit-Limit": str(usage.limit),
        "Ratelimit-Remaining": str(usage.remaining),
        "Ratelimit-Reset": str(reset),
    }
    if usage.exceeded:
        raise ApiError(
            429, "rate_limited", usage.message, headers={"Retry-After": str(max(1, reset))}
        )


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer <API key>``; sets ``request.auth`` to the ApiKey and counts the
    request against the key's rate limit (``bucket``: read/write by method unless given)."""

    def __init__(self, bucket: str | None = None):
        super().__init__()
        self.bucket = bucket

    def __call__(self, request: HttpRequest) -> ApiKey:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise ApiError(401, "unauthorized", "missing header Authorization: Bearer <API key>")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "Authorization must be Bearer <API key>")
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey:
        key = ApiKey.authenticate(token) if len(token) <= 200 else None
        if key is None:
            raise ApiError(401, "unauthorized", "invalid or revoked API key")
        if key.member_role is None:
            raise ApiError(401, "unauthorized", "this API key's user left its workspace")
        key.role = key.member_role
        key.touch()
        authed = cast(ApiRequest, request)
        authed.auth = key
        bucket = self.bucket or ("read" if request.method in ("GET", "HEAD") else "write")
        check_rate_limit(authed, bucket)
        return key

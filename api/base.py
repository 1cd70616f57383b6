"""What every /v1 router builds on: authentication, roles, errors, rate limits, pagination.

How a router builds on this module
----------------------------------
Import from here (``from api.base import ApiError, require_write, ...``), not from
``api.api``: that module imports the routers, so importing it from a router is circular.
Every operation of every router added in ``api.api`` sits behind ``ApiKeyAuth`` (set on the
NinjaAPI itself), so a router needs nothing to get authentication, roles, rate limits and the
``{"id", "message"}`` error bodies. Inside a view:

- ``request.auth`` is the ``services.models.ApiKey`` that signed the request, with
  ``.workspace``, ``.user``, ``.read_only``, and, set here, ``.role`` (the user's
  ``Membership.role`` in that workspace), ``.can_write`` and ``.is_admin``. A key whose user is no
  longer a member of its workspace is a 401 before any view runs.
- ``require_write(request)`` raises a 403 for a viewer or a read-only key;
  ``require_admin(request)`` also for a developer.
- ``raise ApiError(status, id, message)`` answers ``{"id": id, "message": message}`` with that
  status; ``bad_request(field, message)`` is the 400 that names a field.
- ``get_service(request, service_id)``, ``get_job(request, service, job_id)`` and
  ``get_build(request, service, build_id)`` are the workspace-scoped lookups: a missing id and
  an id of another workspace are the same 404. ``workspace_services(request)`` is the queryset.
- Declare error responses with ``errors(...)``, e.g. ``response={200: Out, **errors(400, 404)}``,
  so ``/v1/openapi.json`` stays truthful (401 and 429 are added for you).
- Pagination: ``Page`` (``limit`` 1-100, default 20, and ``cursor``) and
  ``paginate(qs, page, "job")`` (the id prefix checks cursors) give keyset pages on
  (created_at, id) descending with opaque cursors (``encode_cursor(created_at, id)``).
- Timestamps: ``isoformat(dt)`` writes them (UTC, microseconds); ``aware(dt, "field")`` reads
  a query timestamp (no offset means UTC; out of range is a 400 naming the field).
- Rate limits (settings ``API_RATE_LIMIT_*``, per key, in the default cache shared by every web
  process): GET/HEAD count as reads, other methods as writes; an operation declared with
  ``auth=ApiKeyAuth(bucket="job_create")`` counts against the job-creation limit instead. Every
  authenticated response carries ``Ratelimit-Limit``, ``Ratelimit-Remaining`` and
  ``Ratelimit-Reset``; a 429 also ``Retry-After``. A view that returns its own ``HttpResponse``
  gets them through ``empty_response(request, status)``.
"""

import base64
import binascii
import hmac
import json
import logging
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django_ratelimit.core import get_usage
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.operation import PathView
from ninja.security import HttpBearer

from services import ids
from services.models import ApiKey, Build, Membership, Role, Service

log = logging.getLogger(__name__)

RATE_SETTINGS = {
    "read": "API_RATE_LIMIT_READ",
    "write": "API_RATE_LIMIT_WRITE",
    "job_create": "API_RATE_LIMIT_JOB_CREATE",
}
ERROR_IDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An API failure answered as ``{"id": id, "message": message}`` with ``status``."""

    def __init__(self, status: int, id: str, message: str, *, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.id = id
        self.message = message
        self.headers = headers or {}


def bad_request(field: str, message: str) -> ApiError:
    """The 400 for one bad field; the message starts with the field's name."""
    return ApiError(400, "bad_request", f"{field}: {message}")


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


class ErrorOut(Schema):
    id: str = Field(description="Machine-readable error id, e.g. `bad_request`, `not_found`.")
    message: str = Field(description="What went wrong; a 400 names the field first.")


def errors(*codes: int) -> dict[int, type[ErrorOut]]:
    """Error responses for an operation's ``response=`` (always with 401 and 429)."""
    return dict.fromkeys(sorted({*codes, 401, 429}), ErrorOut)


# Roles ---------------------------------------------------------------------------------------


def require_write(request: HttpRequest) -> None:
    key = request.auth
    if key.read_only:
        raise ApiError(403, "forbidden", "this API key is read-only")
    if key.role == Role.VIEWER:
        raise ApiError(403, "forbidden", "viewers cannot change anything in this workspace")


def require_admin(request: HttpRequest) -> None:
    require_write(request)
    if request.auth.role != Role.ADMIN:
        raise ApiError(403, "forbidden", "only workspace admins can do this")


# Workspace-scoped lookups ---------------------------------------------------------------------


def workspace_services(request: HttpRequest):
    return Service.objects.filter(workspace=request.auth.workspace)


def get_service(request: HttpRequest, service_id: str) -> Service:
    service = (
        workspace_services(request).select_related("plan", "workspace").filter(pk=service_id)
    ).first()
    if service is None:
        raise not_found("service")
    return service


def get_job(request: HttpRequest, service: Service, job_id: str):
    from jobs.models import Job

    job = (
        Job.objects.filter(workspace=request.auth.workspace, service=service, pk=job_id)
        .select_related("build", "env_snapshot", "workspace", "created_by", "canceled_by")
        .defer("env_snapshot__data")
    ).first()
    if job is None:
        raise not_found("job")
    return job


def get_build(request: HttpRequest, service: Service, build_id: str) -> Build:
    build = Build.objects.filter(service=service, pk=build_id).first()
    if build is None:
        raise not_found("build")
    return build


# Pagination -----------------------------------------------------------------------------------


class Page(Schema):
    limit: int = Field(20, ge=1, le=100, description="Items per page (1-100).")
    cursor: str | None = Field(
        None, max_length=200, description="Opaque; the `cursor` of the last item of a page."
    )


def isoformat(value: datetime | None) -> str | None:
    """RFC 3339 with microseconds and offset, in UTC: ``2025-03-20T12:16:02.544199+00:00``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def unb64(value: str) -> bytes:
    """Strict urlsafe base64 without padding (binascii.Error on anything else)."""
    return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)


def encode_cursor(created_at: datetime, pk: str) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat(timespec='microseconds')}|{pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str, prefix: str | tuple[str, ...]) -> tuple[datetime, str]:
    prefixes = (prefix,) if isinstance(prefix, str) else prefix
    try:
        raw = unb64(value).decode()
        stamp, _, pk = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        created_at, pk = None, ""
    if (
        created_at is None
        or created_at.tzinfo is None
        or not any(ids.is_valid(pk, p) for p in prefixes)
    ):
        raise bad_request("cursor", "not a cursor of this list; pass an item's `cursor` unchanged")
    return created_at, pk


def paginate(queryset, page: Page, prefix: str | tuple[str, ...]) -> list:
    """One page, newest first, by keyset on (created_at, id): as cheap deep as on page one."""
    if page.cursor:
        created_at, pk = decode_cursor(page.cursor, prefix)
        # The redundant `created_at <= …` bounds the index range scan; the exclude breaks ties.
        queryset = queryset.filter(created_at__lte=created_at).exclude(
            created_at=created_at, pk__gte=pk
        )
    return list(queryset.order_by("-created_at", "-pk")[: page.limit])


def aware(value: datetime | None, field: str = "time") -> datetime | None:
    """A query timestamp in UTC (one without an offset is UTC); out of range is a 400."""
    if value is None:
        return None
    if timezone.is_naive(value):
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise bad_request(field, "is out of range") from None


# Authentication and rate limits ---------------------------------------------------------------


def _rate_key(group: str, request: HttpRequest) -> str:
    # Part of the key's hash: unique per key, and not reused when a test database restarts ids.
    return request.auth.key_hash[:24]


def check_rate_limit(request: HttpRequest, bucket: str) -> None:
    rate = getattr(settings, RATE_SETTINGS[bucket])
    usage = get_usage(
        request, group=f"oneoff-api-{bucket}", key=_rate_key, rate=rate, increment=True
    )
    if usage is None:
        return
    if usage["limit"] == 0 and usage["time_left"] == -1:
        # The cache did not answer: serve rather than refuse every request.
        log.warning("rate-limit cache unavailable; request not counted")
        return
    reset = max(0, usage["time_left"])
    request.ratelimit_headers = {
        "Ratelimit-Limit": str(usage["limit"]),
        "Ratelimit-Remaining": str(max(0, usage["limit"] - usage["count"])),
        "Ratelimit-Reset": str(reset),
    }
    if usage["should_limit"]:
        what = {"read": "reads", "write": "writes", "job_create": "job creations"}[bucket]
        raise ApiError(
            429,
            "rate_limited",
            f"rate limit of {rate} {what} per API key exceeded; retry in {max(1, reset)} s",
            headers={"Retry-After": str(max(1, reset))},
        )


def _find_key(token: str) -> ApiKey | None:
    """ApiKey.authenticate's rules (active key, hash compared in constant time, active user),
    with the user's role in the key's workspace fetched in the same query."""
    digest = ApiKey.hash(token)
    role = Membership.objects.filter(
        user_id=OuterRef("user_id"), workspace_id=OuterRef("workspace_id")
    )
    key = (
        ApiKey.objects.active()
        .select_related("user", "workspace")
        .annotate(member_role=Subquery(role.values("role")[:1]))
        .filter(key_hash=digest)
        .first()
    )
    if key is None or not hmac.compare_digest(key.key_hash, digest) or not key.user.is_active:
        return None
    return key


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer <API key>``; sets ``request.auth`` to the ApiKey and counts the
    request against the key's rate limit (``bucket``: read/write by method unless given)."""

    def __init__(self, bucket: str | None = None):
        super().__init__()
        self.bucket = bucket

    def __call__(self, request: HttpRequest):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise ApiError(401, "unauthorized", "missing header Authorization: Bearer <API key>")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "Authorization must be Bearer <API key>")
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str):
        key = _find_key(token) if len(token) <= 200 else None
        if key is None:
            raise ApiError(401, "unauthorized", "invalid or revoked API key")
        role = key.member_role
        if role is None:
            raise ApiError(401, "unauthorized", "this API key's user left its workspace")
        key.role = role
        key.is_admin = role == Role.ADMIN and not key.read_only
        key.can_write = role != Role.VIEWER and not key.read_only
        key.touch()
        request.auth = key
        bucket = self.bucket or ("read" if request.method in ("GET", "HEAD") else "write")
        check_rate_limit(request, bucket)
        return key


# The API --------------------------------------------------------------------------------------


class OneoffApi(NinjaAPI):
    def create_response(self, request, data, *, status=None, temporal_response=None):
        response = super().create_response(
            request, data, status=status, temporal_response=temporal_response
        )
        for name, value in getattr(request, "ratelimit_headers", {}).items():
            response[name] = value
        return response


def empty_response(request: HttpRequest, status: int = 204) -> HttpResponse:
    response = HttpResponse(status=status)
    for name, value in getattr(request, "ratelimit_headers", {}).items():
        response[name] = value
    return response


def error_response(request, status: int, id: str, message: str, headers=None) -> HttpResponse:
    response = HttpResponse(
        json.dumps({"id": id, "message": message}),
        status=status,
        content_type="application/json; charset=utf-8",
    )
    for name, value in getattr(request, "ratelimit_headers", {}).items():
        response[name] = value
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _field_of(loc) -> str:
    parts = [str(p) for p in loc]
    # ninja prefixes the source ("body", "query", "path", "header") and, for a body, the name of
    # the view's parameter; what is left is the field as the client spelt it.
    if parts and parts[0] in ("body", "query", "path", "header", "form", "cookie"):
        source = parts.pop(0)
        if source == "body" and len(parts) > 1 and parts[0] == "payload":
            parts.pop(0)
        elif source == "body" and parts == ["payload"]:
            return "body"
    dotted = ""
    for part in parts:
        dotted += f"[{part}]" if part.isdigit() else (f".{part}" if dotted else part)
    return dotted or "body"


def _validation_message(error: dict) -> str:
    kind = error.get("type", "")
    if kind in ("json_invalid", "json_type"):
        return "malformed JSON"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    message = error.get("msg", "is invalid")
    return message[:1].lower() + message[1:]


def _on_validation_error(request, exc: ValidationError):
    error = exc.errors[0] if exc.errors else {}
    field = _field_of(error.get("loc", ()))
    return error_response(
        request, 400, "bad_request", f"{field}: {_validation_message(error)}"[:1000]
    )


def _on_api_error(request, exc: ApiError):
    return error_response(request, exc.status, exc.id, exc.message, exc.headers)


def _on_http_error(request, exc: HttpError):
    status = exc.status_code
    if status == 400 and str(exc).startswith("Cannot parse request body"):
        return error_response(request, 400, "bad_request", "body: malformed JSON")
    if isinstance(exc, AuthenticationError):
        return error_response(request, 401, "unauthorized", "missing or invalid API key")
    return error_response(request, status, ERROR_IDS.get(status, "error"), str(exc))


def _on_404(request, exc):
    return error_response(request, 404, "not_found", "not found")


def _on_exception(request, exc):
    log.exception("unhandled error in %s %s", request.method, request.path)
    return error_response(request, 500, "internal_error", "an unexpected error occurred")


def _json_not_allowed(self) -> HttpResponse:
    allowed = sorted({method for op in self.operations for method in op.methods})
    response = HttpResponse(
        json.dumps(
            {"id": "method_not_allowed", "message": f"method not allowed; use {', '.join(allowed)}"}
        ),
        status=405,
        content_type="application/json; charset=utf-8",
    )
    response["Allow"] = ", ".join(allowed)
    return response


def install_error_handlers(api: NinjaAPI) -> None:
    """Every failure becomes ``{"id", "message"}`` JSON with the right status."""
    # ninja answers a wrong method in plain text from PathView, before any handler runs; this
    # project has one NinjaAPI, so its PathView answers JSON like every other error.
    PathView._not_allowed = _json_not_allowed
    api.add_exception_handler(ValidationError, _on_validation_error)
    api.add_exception_handler(ApiError, _on_api_error)
    api.add_exception_handler(HttpError, _on_http_error)
    api.add_exception_handler(Http404, _on_404)
    api.add_exception_handler(Exception, _on_exception)

"""Every failure of the /v1 API is ``{"id", "message"}`` JSON with the right status.

A view raises ``ApiError(status, id, message)``, or ``bad_request(field, message)`` for the 400
that names a field, or lets a domain error (``services.errors``) through: this module maps that
vocabulary once (``Invalid`` and ``Refused`` a 400, ``OverBudget`` a 402, ``Forbidden`` a 403,
``NotFound`` a 404, ``Limited`` a 429 with ``Retry-After``); the database not answering is a 503
with ``Retry-After`` (services/outage.py), anything else a 500.
Operations declare their error responses with ``errors(...)``, e.g.
``response={200: Out, **errors(400, 404)}``, so ``/v1/openapi.json`` stays truthful (401 and 429
are added for you).
"""

import json
import logging

from django.http import Http404, HttpResponse
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.operation import PathView

from api.responses import with_rate_limit_headers
from services.errors import DomainError, Forbidden, Limited, NotFound, OverBudget
from services.outage import DATABASE_MESSAGE, RETRY_AFTER_SECONDS, database_unavailable

log = logging.getLogger(__name__)

ERROR_IDS = {
    400: "bad_request",
    401: "unauthorized",
    402: "budget_exceeded",
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


def error_response(request, status: int, id: str, message: str, headers=None) -> HttpResponse:
    response = HttpResponse(
        json.dumps({"id": id, "message": message}),
        status=status,
        content_type="application/json; charset=utf-8",
    )
    with_rate_limit_headers(request, response)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _field_of(loc) -> str:
    parts = [str(p) for p in loc]
    # ninja prefixes the source ("body", "query", "path", "header") and, for a body, the name of
    # the view's parameter; what is left is the field as the client spelt it.
    if parts and parts[0] in ("body", "query", "path", "header", "form", "cookie"):
        source = parts.pop(0)
        if source == "query" and parts:
            # Query parameters are flat: the parameter is the last name (ninja may put the view's
            # argument before it, and a list's index after it, which the client never wrote).
            names = [p for p in parts if not p.isdigit()]
            return names[-1] if names else "query"
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


def _on_domain_error(request, exc: DomainError):
    # Invalid's text names its field first ("planId: ..."), like every other 400 here.
    if isinstance(exc, NotFound):
        return error_response(request, 404, "not_found", str(exc))
    if isinstance(exc, Forbidden):
        return error_response(request, 403, "forbidden", str(exc))
    if isinstance(exc, OverBudget):
        return error_response(request, 402, "budget_exceeded", str(exc))
    if isinstance(exc, Limited):
        headers = {"Retry-After": str(exc.retry_after)}
        return error_response(request, 429, "rate_limited", str(exc), headers)
    return error_response(request, 400, "bad_request", str(exc))


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
    if database_unavailable(exc):
        log.warning("database unavailable: %s %s: %s", request.method, request.path, exc)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error_response(request, 503, "unavailable", DATABASE_MESSAGE, headers)
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
    PathView._not_allowed = _json_not_allowed  # type: ignore[method-assign]
    # ninja types a handler's second argument as the exception or its class; it is always an
    # instance (ninja.main.NinjaAPI.on_exception), which is what these handlers take.
    api.add_exception_handler(ValidationError, _on_validation_error)  # type: ignore[arg-type]
    api.add_exception_handler(ApiError, _on_api_error)  # type: ignore[arg-type]
    api.add_exception_handler(DomainError, _on_domain_error)  # type: ignore[arg-type]
    api.add_exception_handler(HttpError, _on_http_error)  # type: ignore[arg-type]
    api.add_exception_handler(Http404, _on_404)
    api.add_exception_handler(Exception, _on_exception)

"""Limits every request meets before a view sees it, answered in the face's own error shape.

- A body over ``REQUEST_MAX_BYTES`` is a 413, refused from its Content-Length before it is read
  (one sent without a length is cut off by Django at the same limit, and answered the same way).
- An API query parameter the operation does not take is a 400 naming it (``api.known_params``): a
  filter Oneoff cannot honour is never silently ignored.
- A NUL character in any query parameter or field (a JSON body walked to its leaves, or a form) is a
  400 naming the field: PostgreSQL cannot store it in text, and the Docker Engine echoes a NUL'd
  env value back in its error.
"""

import json
from collections.abc import Callable, Iterator
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from api.errors import error_response
from dashboard.errors import error_page
from dashboard.http import HtmxHttpRequest

NUL = "\x00"


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or behind ``PROXY_COUNT`` trusted proxies, the
    X-Forwarded-For entry the outermost of them appended (entries further left are the client's
    word, not to be trusted)."""
    remote = request.META.get("REMOTE_ADDR")
    if not settings.PROXY_COUNT:
        return remote
    forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [p for p in forwarded if p]
    if len(forwarded) >= settings.PROXY_COUNT:
        return forwarded[-settings.PROXY_COUNT]
    return remote


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(field path, text) for every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, str(key)
            yield from _leaves(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")


def nul_field(request: HttpRequest) -> str | None:
    """The first field of the request whose name or value holds a NUL character, or None."""
    for key, values in request.GET.lists():
        if NUL in key or any(NUL in v for v in values):
            return key.replace(NUL, "\\0")
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"null")
        except ValueError:
            return None  # the view says the JSON is malformed
        for path, text in _leaves(data, ""):
            if NUL in text:
                return (path or "body").replace(NUL, "\\0")
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, values in request.POST.lists():
            if NUL in key or any(NUL in v for v in values):
                return key.replace(NUL, "\\0")
    return None


class RequestLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.REQUEST_MAX_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        try:
            if length > limit:
                return self.too_large(request, limit)
            field = nul_field(request)
        except RequestDataTooBig:
            return self.too_large(request, limit)
        if field is not None:
            return self.reject(request, 400, "bad_request", f"{field}: must not contain NUL")
        if request.path.startswith("/v1/"):
            from api.known_params import unknown_parameter

            unknown = unknown_parameter(request)
            if unknown is not None:
                message = (
                    f"{unknown}: not a query parameter of this operation, so Oneoff cannot honour "
                    "it (GET /v1/openapi.json lists each operation's parameters)"
                )
                return self.reject(request, 400, "bad_request", message)
        return self.get_response(request)

    def too_large(self, request: HttpRequest, limit: int) -> HttpResponse:
        message = f"the request body is larger than {limit} bytes"
        return self.reject(request, 413, "payload_too_large", message)

    @staticmethod
    def reject(request: HttpRequest, status: int, id: str, message: str) -> HttpResponse:
        if request.path.startswith("/v1/"):
            return error_response(request, status, id, message)
        # Django's htmx middleware has run before this one: the request is an htmx one.
        return error_page(cast(HtmxHttpRequest, request), status, message)

"""Responses a view builds itself, with the key's rate-limit headers like every other.

``api.auth`` leaves the headers on ``request.ratelimit_headers``; ``OneoffApi`` adds them to the
responses ninja builds, ``api.errors`` to its error bodies, and a view that returns its own
``HttpResponse`` builds it here.
"""

from django.http import HttpRequest, HttpResponse
from ninja.renderers import JSONRenderer

_JSON = JSONRenderer()


def with_rate_limit_headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    for name, value in getattr(request, "ratelimit_headers", {}).items():
        response[name] = value
    return response


def empty_response(request: HttpRequest, status: int = 204) -> HttpResponse:
    return with_rate_limit_headers(request, HttpResponse(status=status))


def json_response(request: HttpRequest, data, status: int = 200) -> HttpResponse:
    """``data`` as ninja renders it, without validating it against the operation's schema: for a
    view whose data is built to that schema already and too large to validate again."""
    content = _JSON.render(request, data, response_status=status)
    response = HttpResponse(
        content, status=status, content_type=f"{_JSON.media_type}; charset={_JSON.charset}"
    )
    return with_rate_limit_headers(request, response)

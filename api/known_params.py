"""No filter silently ignored: a query parameter an API operation does not take (a Render filter
Oneoff cannot honour, such as ``environmentId``, or a typo) is a 400 naming it, never a partial
or unfiltered list answered 200 (``unknown_parameter``, called for every ``/v1/`` request by
``config.middleware.RequestLimitsMiddleware``). The parameters each operation takes are read
once from the API's own OpenAPI document, so a new operation is covered as soon as it is
declared."""

import re
from functools import cache

from django.http import HttpRequest


@cache
def _operations() -> list[tuple[re.Pattern[str], dict[str, frozenset[str]]]]:
    """(path pattern, {method: the query parameters it takes}) for every API operation."""
    from api.api import api

    found = []
    for path, operations in api.get_openapi_schema()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "/?$")
        takes = {
            method.upper(): frozenset(
                p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
            )
            for method, operation in operations.items()
        }
        found.append((pattern, takes))
    return found


def unknown_parameter(request: HttpRequest) -> str | None:
    """The first query parameter of an API request that its operation does not take, or None
    (also for a path or method that is no operation: the API answers those itself)."""
    if not request.GET:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    for pattern, takes in _operations():
        if pattern.match(request.path_info):
            allowed = takes.get(method or "")
            if allowed is None:
                return None
            return next((key for key in request.GET if key not in allowed), None)
    return None

"""Query parameters as Render's clients send them.

- **Arrays in both forms.** Render's generated clients send an array as repeated keys
  (``status=failed&status=canceled``); people and curl often write a comma list
  (``status=failed,canceled``). A list field of a ``ListQuery`` (every ``Page`` is one) takes
  both, and any mix, as one list.
- **No filter silently ignored.** A query parameter the operation does not take (a Render filter
  Oneoff cannot honour, such as ``environmentId``, or a typo) is a 400 naming it, never a
  partial or unfiltered list answered 200 (``unknown_parameter``, called for every ``/v1/``
  request by ``config.middleware.RequestLimitsMiddleware``). The parameters each operation
  takes are read once from the API's own OpenAPI document, so a new operation is covered as soon
  as it is declared.
"""

import re
from functools import cache
from types import UnionType
from typing import Any, ClassVar, Union, get_args, get_origin

from django.http import HttpRequest
from ninja import Schema
from pydantic import ValidationInfo, field_validator


def _split(value: object) -> object:
    """Each item of a list of query values split at commas. An empty value (``status=``) is no
    value; an empty item beside others (``status=failed,``) stays, for the field to refuse."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [part.strip() for item in value if item != "" for part in str(item).split(",")]
    return value


def _is_list(annotation: object) -> bool:
    if get_origin(annotation) in (Union, UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return get_origin(annotation) is list


class ListQuery(Schema):
    """A query whose list fields take repeated keys, comma lists, or both (ninja collects the
    repeated keys; this splits the commas). ``keep_commas`` names lists of free text."""

    keep_commas: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _split_lists(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if name in cls.keep_commas or not _is_list(cls.model_fields[name].annotation):
            return value
        return _split(value)


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

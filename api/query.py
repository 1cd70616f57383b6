"""Query parameters as Render's clients send them.

- **Arrays in both forms.** Render's generated clients send an array as repeated keys
  (``status=failed&status=canceled``); people and curl often write a comma list
  (``status=failed,canceled``). A list field of a ``ListQuery`` (every ``Page`` is one) takes
  both, and any mix, as one list.
- **No filter silently ignored**: ``api.known_params``.
"""

from types import UnionType
from typing import Any, ClassVar, Union, get_args, get_origin

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


def is_list(annotation: object) -> bool:
    """Whether a field's annotation is a list (or an optional one)."""
    if get_origin(annotation) in (Union, UnionType):
        return any(is_list(arg) for arg in get_args(annotation))
    return get_origin(annotation) is list


class ListQuery(Schema):
    """A query whose list fields take repeated keys, comma lists, or both (ninja collects the
    repeated keys; this splits the commas). ``keep_commas`` names lists of free text."""

    keep_commas: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _split_lists(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if name in cls.keep_commas or not is_list(cls.model_fields[name].annotation):
            return value
        return _split(value)

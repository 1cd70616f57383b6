"""Render's log filters: wildcards and regular expressions, bounded in cost.

Render's rule (its logging docs, "Wildcards and regular expressions"): ``*`` matches any number
of characters, and a value between slashes (``/foo.*bar/``) is a regular expression in RE2
syntax. Here:

- ``text`` (the message): a plain value matches lines *containing* it; ``foo*bar`` lines
  containing ``foo`` followed by ``bar``; ``/re/`` lines in which ``re`` matches somewhere. Each
  ``text`` value must match (they narrow the search).
- A label filter (``level``, ``type``, ``instance``): a plain value is the label's whole value;
  ``*`` a wildcard over the whole value (``err*``); ``/re/`` matches somewhere in it. Any value
  may match. Matched in Python against the few values Oneoff has, so a level Oneoff never
  writes (``warning``) matches nothing rather than being refused.

Cost: a pattern is at most ``MAX_PATTERN`` characters, at most ``MAX_TERMS`` per filter, and is
compiled by RE2 first (linear time; no backreferences or lookaround, which RE2 refuses, so they
are a 400 naming the field). PostgreSQL then runs it with its own engine (``~``), after the
few spellings that differ are translated (``\\b`` is ``\\y`` there); ``bounded`` puts a
statement timeout on the query. SQLite, the embedded default, runs the same RE2 (its REGEXP is
registered by ``use_re2_for_sqlite_regexp``) and is stopped by a progress handler at the same
deadline.
"""

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import re2
from django.conf import settings
from django.db import OperationalError, connection

from services.errors import Invalid

MAX_PATTERN = 200
MAX_TERMS = 10


class SearchTooSlow(Exception):
    """The query ran past ``LOGS_QUERY_TIMEOUT`` seconds and was stopped."""


def _options() -> "re2.Options":
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 8 << 20  # RE2 falls back to a slower (still linear) engine past this
    return options


@lru_cache(maxsize=256)
def compile_re2(pattern: str) -> "re2._Regexp":
    return re2.compile(pattern, _options())


def is_regex(value: str) -> bool:
    return len(value) >= 2 and value.startswith("/") and value.endswith("/")


@dataclass(frozen=True)
class Term:
    """One filter value: ``regex`` is the RE2 expression it stands for (None for a plain
    value, matched as a substring or as the whole label)."""

    value: str
    regex: str | None


def parse(field: str, values: list[str]) -> list[Term]:
    """The filter's values as terms; a bad one is ``Invalid`` naming ``field``."""
    values = [v for v in values if v != ""]
    if len(values) > MAX_TERMS:
        raise Invalid(field, f"at most {MAX_TERMS} values")
    terms = []
    for value in values:
        if len(value) > MAX_PATTERN:
            raise Invalid(field, f"at most {MAX_PATTERN} characters per value")
        if is_regex(value):
            expression = value[1:-1]
        elif "*" in value:
            expression = ".*".join(re.escape(part) for part in value.split("*"))
        else:
            terms.append(Term(value, None))
            continue
        try:
            compile_re2(expression)
        except re2.error as exc:
            detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
            raise Invalid(
                field, f"not a valid RE2 regular expression {value!r}: {detail}"
            ) from None
        terms.append(Term(value, expression))
    return terms


@lru_cache(maxsize=64)
def text_pattern(value: str) -> "re2._Regexp":
    """What a ``text`` value matches, compiled (for marking matches in a page): the value itself
    when plain, else its expression. The value must already have passed ``parse``."""
    [term] = parse("text", [value])
    return compile_re2(term.regex if term.regex is not None else re.escape(term.value))


def label_matcher(terms: list[Term]) -> Callable[[str], bool]:
    """Whether a label's value is one the filter asks for (any term; no terms: every value)."""

    def matches(label: str) -> bool:
        for term in terms:
            if term.regex is None:
                if label == term.value:
                    return True
            elif is_regex(term.value):
                if compile_re2(term.regex).search(label):
                    return True
            elif compile_re2(term.regex).fullmatch(label):
                return True
        return not terms

    return matches


# RE2 escapes PostgreSQL spells differently (outside brackets): word boundary \b is \y there
# (\b is a backspace), \B is \Y, end of text \z is \Z.
_PG_ESCAPES = {"b": r"\y", "B": r"\Y", "z": r"\Z"}


def for_postgresql(expression: str) -> str:
    """An RE2 expression in PostgreSQL's spelling (its advanced regular expressions)."""
    out = []
    i, in_class = 0, False
    while i < len(expression):
        char = expression[i]
        if char == "\\" and i + 1 < len(expression):
            pair = expression[i : i + 2]
            out.append(pair if in_class else _PG_ESCAPES.get(pair[1], pair))
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            out.append(char)
            # A ] right after [ or [^ is a literal.
            if expression[i + 1 : i + 2] == "^":
                out.append("^")
                i += 1
            if expression[i + 1 : i + 2] == "]":
                out.append("]")
                i += 1
        elif char == "]" and in_class:
            in_class = False
            out.append(char)
        else:
            out.append(char)
        i += 1
    return "".join(out)


def text_lookups(terms: list[Term]) -> list[dict[str, str]]:
    """Django filter keyword arguments on a ``text`` column, one per term (all must match)."""
    found = []
    for term in terms:
        if term.regex is None:
            found.append({"text__contains": term.value})
        elif connection.vendor == "postgresql":
            found.append({"text__regex": for_postgresql(term.regex)})
        else:
            found.append({"text__regex": term.regex})
    return found


def _re2_regexp(pattern: str | None, string: str | None) -> bool | None:
    if pattern is None or string is None:
        return None
    return bool(compile_re2(pattern).search(str(string)))


def use_re2_for_sqlite_regexp(sender: object, connection: object, **kwargs: object) -> None:
    """``connection_created``: SQLite's REGEXP (Django registers Python's backtracking ``re``)
    runs RE2 instead, linear in the line's length whatever the pattern."""
    if getattr(connection, "vendor", None) == "sqlite":
        raw = connection.connection  # type: ignore[attr-defined]
        raw.create_function("REGEXP", 2, _re2_regexp, deterministic=True)


@contextmanager
def bounded() -> Iterator[None]:
    """Run the queries inside (in a transaction) for at most ``LOGS_QUERY_TIMEOUT`` seconds;
    past it they are stopped and ``SearchTooSlow`` raised."""
    seconds = float(settings.LOGS_QUERY_TIMEOUT)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = %s", [f"{max(1, int(seconds * 1000))}ms"])
        try:
            yield
        except OperationalError as exc:
            if type(exc.__cause__).__name__ == "QueryCanceled":
                raise SearchTooSlow() from exc
            raise
        else:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout TO DEFAULT")
        return
    connection.ensure_connection()
    raw = connection.connection
    deadline = time.monotonic() + seconds
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        yield
    except OperationalError as exc:
        if "interrupted" in str(exc):
            raise SearchTooSlow() from exc
        raise
    finally:
        raw.set_progress_handler(None, 0)

"""Render's wildcards and regular expressions in log filters (``jobs.logs.search``), without a
server: parsing, matching labels, PostgreSQL's spelling, and SQLite's REGEXP run by RE2."""

import sqlite3
import time
from types import SimpleNamespace

import pytest

from jobs.logs import search
from services.errors import Invalid


def test_values_are_plain_wildcards_or_regular_expressions():
    plain, wildcard, regex = search.parse("text", ["a.b", "foo*b.r", "/(GET|POST) /"])
    assert plain.regex is None
    assert wildcard.regex == r"foo.*b\.r"
    assert regex.regex == "(GET|POST) "
    assert search.parse("text", ["", "x"]) == [search.Term("x", None)]
    assert search.parse("text", ["/"]) == [search.Term("/", None)]  # one slash is text


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("/(a/", "not a valid RE2"),
        (r"/(a)\1/", "not a valid RE2"),
        ("/(?<=a)b/", "not a valid RE2"),
        ("/" + "x" * 250 + "/", "at most 200 characters"),
    ],
)
def test_a_bad_value_is_invalid_naming_the_field(value, says):
    with pytest.raises(Invalid) as caught:
        search.parse("level", [value])
    assert caught.value.field == "level"
    assert says in caught.value.message


def test_label_filters_match_the_whole_value_or_a_regex_anywhere():
    def matches(*values):
        matcher = search.label_matcher(search.parse("level", list(values)))
        return [name for name in ("info", "error", "warning") if matcher(name)]

    assert matches() == ["info", "error", "warning"]
    assert matches("error") == ["error"]
    assert matches("err") == []  # plain: the whole value
    assert matches("err*") == ["error"]
    assert matches("/rr/") == ["error"]  # regex: anywhere
    assert matches("/^(info|warning)$/", "error") == ["info", "error", "warning"]
    assert matches("critical") == []


@pytest.mark.parametrize(
    ("re2", "postgresql"),
    [
        (r"\bfoo\b", r"\yfoo\y"),
        (r"\Bx\z", r"\Yx\Z"),
        (r"[\b]x", r"[\b]x"),  # in brackets: unchanged
        (r"[]\b]\b", r"[]\b]\y"),
        (r"[^]a]\b", r"[^]a]\y"),
        (r"\\b", r"\\b"),  # an escaped backslash, then b
        (r"\d{3}\.\w+", r"\d{3}\.\w+"),
    ],
)
def test_re2_spellings_postgresql_writes_differently_are_translated(re2, postgresql):
    assert search.for_postgresql(re2) == postgresql


def test_sqlites_regexp_runs_re2_in_linear_time():
    raw = sqlite3.connect(":memory:")
    search.use_re2_for_sqlite_regexp(None, SimpleNamespace(vendor="sqlite", connection=raw))
    line = "a" * 20_000 + "!"
    began = time.monotonic()
    # Catastrophic for a backtracking engine (Python's re would not finish).
    assert raw.execute("SELECT ? REGEXP ?", [line, "(a+)+$"]).fetchone() == (0,)
    assert raw.execute("SELECT ? REGEXP ?", ["GET /x 503", r"5\d\d$"]).fetchone() == (1,)
    assert raw.execute("SELECT NULL REGEXP 'a'").fetchone() == (None,)
    assert time.monotonic() - began < 1

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.utils.safestring import SafeString

from dashboard.templatetags.dashboard import highlight, human_seconds, money, reason_text, ts


def job(status="failed", reason=None, memory=512, **extra):
    return SimpleNamespace(
        status=status,
        reason=reason or {},
        plan=SimpleNamespace(memory_mb=memory),
        exit_code=extra.get("exit_code"),
        note=extra.get("note", ""),
        cancel_requested_at=extra.get("cancel_requested_at"),
    )


def test_reasons_in_plain_words():
    assert reason_text(job(reason={"oomKilled": {"memoryLimit": 536870912}})) == (
        "Out of memory: exceeded 512 MB — try a larger plan"
    )
    assert reason_text(job(reason={"oomKilled": {"memoryLimit": "512Mi"}})) == (
        "Out of memory: exceeded 512 MB — try a larger plan"
    )
    assert reason_text(job(reason={"oomKilled": {"memoryLimit": "2048Mi"}})) == (
        "Out of memory: exceeded 2 GB — try a larger plan"
    )
    assert reason_text(job(reason={"evicted": True, "evictionReason": "host stopped"})) == (
        "Lost: host stopped"
    )
    assert reason_text(job(reason={"oomKilled": {}}, memory=2048)) == (
        "Out of memory: exceeded 2048 MB — try a larger plan"
    )
    assert reason_text(job(reason={"nonZeroExit": 3})) == "Exited with code 3"
    assert reason_text(job(reason={"timedOutSeconds": 30 * 86400})) == "Timed out after 30 d"
    assert reason_text(job("canceled", {"canceledBy": "alice@acme.test"})) == (
        "Canceled by alice@acme.test"
    )
    assert reason_text(job(reason={"startError": "no such image"})) == (
        "Could not start: no such image"
    )
    assert reason_text(job("succeeded")) == "Exited with code 0"
    assert reason_text(job("pending")) == "Waiting for a runner"


def test_durations():
    assert human_seconds(None) == "—"
    assert human_seconds(2.34) == "2.3 s"
    assert human_seconds(42) == "42 s"
    assert human_seconds(125) == "2 min 5 s"
    assert human_seconds(7200) == "2 h"
    assert human_seconds(90061) == "1 d 1 h"


def test_money():
    assert money(None) == "—"
    assert money(0) == "$0"
    assert money(Decimal("0.000027")) == "$0.000027"
    assert money(Decimal("12.5")) == "$12.50"
    assert money(Decimal("1234.5")) == "$1,234.50"


def test_highlight_escapes_every_piece():
    assert (
        highlight("<a>Foo</a> foo", "foo") == "&lt;a&gt;<mark>Foo</mark>&lt;/a&gt; <mark>foo</mark>"
    )
    assert highlight("a&b", "&") == "a<mark>&amp;</mark>b"
    assert highlight("a.b", ".") == "a<mark>.</mark>b"
    assert highlight("<x>", "") == "&lt;x&gt;"


@pytest.mark.parametrize(
    "dt",
    [
        datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7, tzinfo=ZoneInfo("America/Los_Angeles")),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=ZoneInfo("Asia/Kathmandu")),
        datetime(1000, 1, 1, 0, 0, 0, tzinfo=UTC),
        datetime(1000, 1, 1, 5, 0, 0, tzinfo=ZoneInfo("Asia/Kathmandu")),  # 999 in UTC
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
@pytest.mark.parametrize("fmt", ["datetime", "relative", '"><script>', SafeString("<b>")])
def test_a_time_is_what_format_html_wrote(dt, fmt):
    from django.utils.html import format_html

    utc = dt.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    iso = utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    expected = format_html(
        '<time datetime="{}" title="{}" data-format="{}">{}</time>', iso, text, fmt, text
    )
    assert ts(dt, fmt) == expected
    assert ts(None) == '<span class="muted">—</span>'

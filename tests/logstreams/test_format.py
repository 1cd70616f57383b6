"""RFC 5424 messages and RFC 5425 framing, and endpoint parsing (no network)."""

from datetime import UTC, datetime

import pytest

from jobs.logs.parse import StoredLine
from logstreams import syslog
from logstreams.streams import parse_endpoint
from tests.helpers import Line, parse_rfc5424


def split_frames(data: bytes) -> list[bytes]:
    out = []
    while data:
        length, _, rest = data.partition(b" ")
        out.append(rest[: int(length)])
        data = rest[int(length) :]
    return out


def test_a_message_is_octet_counted_rfc5424_with_escaped_structured_data():
    prefix = syslog.message_prefix(
        hostname="my service\n",
        app_name="srv-1",
        procid="job-1",
        msgid="job",
        params={"token": 'a"b]c\\d', "workspace": "tea-1", "empty": ""},
    )
    when = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)
    data = syslog.frames(prefix, [Line(7, when, 2, "naïve <b>text</b> ✓")])
    length, _, message = data.partition(b" ")
    assert int(length) == len(message)  # bytes, not characters
    assert message.startswith(
        b"<11>1 2026-11-29T12:00:00.123456+00:00 myservice srv-1 job-1 job [oneoff@32473"
        b' token="a\\"b\\]c\\\\d" workspace="tea-1" seq="7" stream="stderr"] '
    )
    parsed = parse_rfc5424(message)
    assert parsed.params == {
        "token": 'a"b]c\\d',
        "workspace": "tea-1",
        "seq": "7",
        "stream": "stderr",
    }
    assert parsed.msg == "naïve <b>text</b> ✓"
    assert parsed.severity == 3
    assert parsed.facility == 1


def test_the_fast_path_matches_the_plain_one():
    prefix = syslog.message_prefix(
        hostname="web", app_name="srv-1", procid="job-1", msgid="job", params={"job": "job-1"}
    )
    lines = [
        StoredLine(i, 1_764_417_600_000_000 + i * 700_001, 1 + i % 2, f"l{i} é" * (i % 2))
        for i in range(50)
    ]
    fast = syslog.frames(prefix, lines)
    plain = b"".join(
        syslog.frame(prefix, line.timestamp, line.stream, line.seq, line.text) for line in lines
    )
    assert fast == plain
    assert len(split_frames(fast)) == 50


def test_header_fields_are_printable_ascii_and_bounded():
    prefix = syslog.message_prefix(
        hostname="", app_name="x" * 100, procid="job", msgid="ü", params={}
    )
    assert prefix == f" - {'x' * 48} job - [oneoff@32473"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("logs.example.com:6514", ("logs.example.com", 6514)),
        (" 127.0.0.1:514 ", ("127.0.0.1", 514)),
        ("[::1]:6514", ("::1", 6514)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_it_parses_endpoints(value, expected):
    assert parse_endpoint(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "logs.example.com",
        ":514",
        "host:0",
        "host:65536",
        "host:port",
        "a b:1",
        "[zz]:1",
        "https://logs.example.com:514",
        "-bad.example:1",
    ],
)
def test_it_rejects_bad_endpoints(value):
    with pytest.raises(ValueError, match=r"HOST:PORT|invalid|port between"):
        parse_endpoint(value)


@pytest.mark.django_db
def test_lines_read_back_for_sending_keep_their_exact_microsecond(service, make_job):
    """The forwarder's batch (``transport.lines_to_send``): each stored time to the microsecond
    as PostgreSQL gives it (no datetime made a line), and the same messages as the datetimes."""
    from datetime import timedelta

    from logstreams import transport
    from tests.logstreams.conftest import store

    job = make_job(service)
    times = [
        datetime(2026, 11, 29, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
    ]
    for at in times:
        store(job, 3, at=at, text="naïve <b>{seq}</b> ✓")
    batch = transport.lines_to_send(job.id, 0, 9)
    expected = [
        transport.Line(*row)
        for row in job.log_lines.order_by("seq").values_list("seq", "timestamp", "stream", "text")
    ]
    assert [line.seq for line in batch] == list(range(9))
    assert [line.timestamp for line in batch] == [line.timestamp for line in expected]
    assert batch[0].timestamp_us == int(times[0].timestamp()) * 1_000_000 + 999_999
    assert batch[3].timestamp == times[1] + timedelta(microseconds=3)  # store adds the seq
    assert syslog.frames(" p", batch) == syslog.frames(" p", expected)
    assert transport.lines_to_send(job.id, 3, 5) == batch[3:5]

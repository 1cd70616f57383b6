"""The two ways a follower reads a container's log: its json-file, or the engine's endpoint.

Both must give the same messages (the endpoint reads the same file), the file is used only when
it is safe to, and LogWriter.add_batch (the per-line fast path) stores exactly what add does.
"""

import json
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from jobs.launch import create_job
from jobs.logs.engine import json_file_path, json_file_pieces, open_log_stream, raw_chunks
from jobs.logs.follow import seek_to_time
from jobs.logs.parse import FrameParser, JsonFileParser, StoredLine
from jobs.logs.store import LogWriter, copy_rows
from jobs.models import Job, LogStream
from tests.helpers import follow_container, start_container

T0 = 1_780_000_000 * 10**9


def json_line(log: str, stream: str = "stdout", time: str = "2026-11-29T12:17:29.042672859Z"):
    return json.dumps({"log": log, "stream": stream, "time": time}, separators=(",", ":")).encode()


def test_the_json_file_parser_reads_dockers_lines_split_anywhere():
    data = b"\n".join(
        [
            json_line("hello\n"),
            json_line("oops\n", "stderr", "2026-11-29T12:17:29.042672860Z"),
            # Docker's own escapes: <, > and & as \u003c..., a tab, a quote, invalid bytes.
            b'{"log":"\\u003ca\\u0026b\\u003e\\t\\"q\\"\\ufffd\\n","stream":"stdout",'
            b'"time":"2026-11-29T12:17:30.000000000Z"}',
            json_line("partial, no newline", time="2026-11-29T12:17:30.000000001Z"),
            json_line("\n", time="2026-11-29T12:17:30.000000002Z"),
            # Another shape (--log-opt labels adds attrs; another time precision).
            b'{"log":"with attrs\\n","stream":"stderr","attrs":{"a":"b"},'
            b'"time":"2026-11-29T12:17:31.5Z"}',
            b"not json at all",
            b"",
        ]
    )
    whole = JsonFileParser().feed(data)
    parser = JsonFileParser()
    pieces = [m for i in range(0, len(data), 7) for m in parser.feed(data[i : i + 7])]
    assert pieces == whole
    assert [(stream, payload.rstrip(b"\n")) for _, stream, payload in whole] == [
        (LogStream.STDOUT, b"hello"),
        (LogStream.STDERR, b"oops"),
        (LogStream.STDOUT, '<a&b>\t"q"\ufffd'.encode()),
        (LogStream.STDOUT, b"partial, no newline"),
        (LogStream.STDOUT, b""),
        (LogStream.STDERR, b"with attrs"),
    ]
    stamps = [ts for ts, _, _ in whole]
    assert stamps[0] == 1_795_954_649_042_672_859
    assert stamps[1] - stamps[0] == 1
    assert stamps[5] == 1_795_954_651_500_000_000


def test_copy_rows_escape_only_the_text():
    line = StoredLine(3, 1_795_954_649_042_672, LogStream.STDERR, "a\tb\\c\rd\ne")
    assert copy_rows("job-x", [line]) == (
        "job-x\t3\t2026-11-29 12:17:29.042672+00\t2\ta\\tb\\\\c\\rd\\ne\n"
    )


messages = st.lists(
    st.tuples(
        st.integers(0, 40),  # nanoseconds after T0, repeats allowed
        st.sampled_from([1, 2]),
        st.one_of(
            st.binary(max_size=40),
            st.binary(max_size=40).map(lambda b: b + b"\n"),
            st.just(b"\x00nul\xff\n"),
        ),
    ),
    max_size=60,
)


@hypothesis_settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(batch=messages, line_max=st.integers(4, 30), max_bytes=st.integers(0, 400))
def test_add_batch_keeps_exactly_what_add_keeps(batch, line_max, max_bytes):
    def writer(skip):
        return LogWriter(
            job_id="job-x",
            line_max=line_max,
            max_bytes=max_bytes,
            skip_ns=T0 + skip,
            skip_count=2,
            cursor_ns=T0 + skip,
            cursor_count=2,
        )

    for skip in (0, 10):
        one, many = writer(skip), writer(skip)
        for offset, stream, payload in batch:
            one.add(T0 + offset, stream, payload)
        many.add_batch([(T0 + offset, stream, payload) for offset, stream, payload in batch])
        fields = [
            "line_count",
            "cursor_ns",
            "cursor_count",
            "stored_bytes",
            "dropped_bytes",
            "last_us",
            "truncation_seq",
            "skip_count",
            "pending",
            "pending_bytes",
            "truncation_dirty",
            "dirty",
        ]
        assert {f: getattr(many, f) for f in fields} == {f: getattr(one, f) for f in fields}


# --- on the real engine -------------------------------------------------------------------------

TRICKY = (
    "echo plain; echo to-stderr >&2; printf 'tab\\there \"quoted\" <a&b> \\\\ back\\n'; "
    "printf '\\377\\376 invalid \\001 ctrl\\n'; printf 'caf\\303\\251 \\342\\234\\223\\n'; "
    "head -c 40000 /dev/zero | tr '\\0' x; echo; printf 'no newline at the end'"
)


@pytest.fixture
def exited_container(docker_client, busybox_image, runner_instance):
    container = start_container(docker_client, busybox_image, runner_instance, TRICKY)
    container.wait(timeout=30)
    container.reload()
    yield container
    container.remove(force=True)


@pytest.mark.docker
def test_the_file_and_the_endpoint_give_the_same_messages(docker_client, exited_container):
    response = open_log_stream(docker_client, exited_container.id, None, follow=False)
    try:
        parser = FrameParser()
        from_api = [m for chunk in raw_chunks(response) for m in parser.feed(chunk)]
    finally:
        response.close()
    path = json_file_path(docker_client, exited_container.attrs)
    assert path == exited_container.attrs["LogPath"]
    with open(path, "rb") as f:
        from_file = JsonFileParser().feed(f.read())

    def normal(messages):  # the file parser leaves the newline out: the writer drops it anyway
        return [(ts, stream, payload.removesuffix(b"\n")) for ts, stream, payload in messages]

    assert len(from_api) == 9  # the 40,000-byte line comes as three pieces
    assert normal(from_file) == normal(from_api)


@pytest.mark.docker
def test_the_file_is_used_only_when_it_is_safe(docker_client, exited_container, settings):
    attrs = exited_container.attrs
    assert json_file_path(docker_client, attrs)
    settings.JOB_LOG_SOURCE = "api"
    assert json_file_path(docker_client, attrs) is None
    settings.JOB_LOG_SOURCE = "auto"
    rotated = {
        **attrs,
        "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}},
    }
    # Truncated in place (one file): a rotated-away piece would be a gap.
    assert json_file_path(docker_client, rotated) is None
    pieces = {"max-size": "10m", "max-file": "4"}
    renamed = {**attrs, "HostConfig": {"LogConfig": {"Type": "json-file", "Config": pieces}}}
    assert json_file_path(docker_client, renamed) == attrs["LogPath"]  # followed across rotation
    assert json_file_pieces(renamed) == 4
    compressed = {**pieces, "compress": "true"}
    gzipped = {**attrs, "HostConfig": {"LogConfig": {"Type": "json-file", "Config": compressed}}}
    assert json_file_path(docker_client, gzipped) is None
    local = {**attrs, "HostConfig": {"LogConfig": {"Type": "local", "Config": {}}}}
    assert json_file_path(docker_client, local) is None
    assert json_file_path(docker_client, {**attrs, "LogPath": "/nonexistent/x-json.log"}) is None

    for base_url in ("https://docker.example:2376", "http+docker://ssh"):
        remote = type("Client", (), {"api": type("Api", (), {"base_url": base_url})})()
        assert json_file_path(remote, attrs) is None


@pytest.mark.docker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("source", ["auto", "api"])
def test_a_follower_stores_the_same_lines_from_either_source(
    source, job_service, docker_client, busybox_image, settings, runner_instance
):
    settings.JOB_LOG_SOURCE = source
    job = create_job(job_service, "true")
    Job.objects.filter(pk=job.pk).update(status="running")
    command = f"seq 1 20000; sleep 0.5; echo after-a-pause; {TRICKY}"
    follower = follow_container(docker_client, busybox_image, runner_instance, job.id, command)
    assert follower.done, follower.error
    assert follower.source == ("file" if source == "auto" else "api")
    rows = list(Job.objects.get(pk=job.pk).log_lines.order_by("seq").values_list("stream", "text"))
    # Docker copies stdout and stderr in goroutines of their own: only each stream's order holds.
    assert [text for stream, text in rows if stream == LogStream.STDERR] == ["to-stderr"]
    assert [text for stream, text in rows if stream == LogStream.STDOUT] == [
        *(str(i) for i in range(1, 20001)),
        "after-a-pause",
        "plain",
        'tab\there "quoted" <a&b> \\ back',
        "\ufffd\ufffd invalid \x01 ctrl",
        "café ✓",
        "x" * 16384,
        "x" * 16384,
        "x" * (40000 - 2 * 16384),
        "no newline at the end",
    ]


def test_a_resuming_follower_seeks_near_its_cursor_in_a_long_file(tmp_path):
    path = tmp_path / "x-json.log"
    stamps = [T0 + i * 1_000_000 for i in range(200_000)]  # a line every millisecond

    def stamp(ns):
        seconds, nanos = divmod(ns, 10**9)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"

    path.write_bytes(
        b"".join(json_line(f"line {i}\n", time=stamp(ns)) + b"\n" for i, ns in enumerate(stamps))
    )
    with open(path, "rb") as f:
        for target in (0, T0, stamps[1], stamps[123_456], stamps[-1], stamps[-1] + 1):
            seek_to_time(f, target)
            position = f.tell()
            rest = JsonFileParser().feed(f.read())
            first_due = next((i for i, ns in enumerate(stamps) if ns >= target), len(stamps))
            skipped = len(stamps) - len(rest)
            assert skipped <= first_due  # nothing due is skipped
            assert first_due - skipped <= 2000  # and little before it is read again
            assert position == 0 or path.read_bytes()[position - 1 : position] == b"\n"

"""The chaos suite's own judgement (chaos/check.py, the receiver's parsing, the table): what it
counts as lost, doubled or correct must be right before its table can be believed. The suite
itself runs with `make chaos` / `make chaos-quick`, not here."""

import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime

from chaos import table
from chaos.check import (
    Container,
    Outcome,
    Tracked,
    compare_lines,
    job_command,
    judge,
    line_numbers,
    parse_command,
    printed_lines,
)
from chaos.trials.logstream import Receiver, make_pki
from logstreams.syslog import frames, message_prefix
from tests.helpers import missing_part


def test_the_job_command_prints_its_numbered_lines_on_both_streams():
    shell = shutil.which("busybox")
    if shell is None:
        missing_part("Debian's busybox-static runs the jobs' shell here")
    command = job_command(5, 0.01)
    result = subprocess.run(
        [shell, "sh", "-c", command], capture_output=True, text=True, timeout=10, check=True
    )
    assert result.stdout.split("\n") == ["line 1", "line 3", "line 5", ""]
    assert result.stderr.split("\n") == ["line 2", "line 4", ""]
    assert parse_command(command) == (5, 0.01)


def test_lost_lines_are_the_printed_ones_missing_and_gaps_below_one_that_arrived():
    outcome = Outcome()
    counts, other = line_numbers(["line 1", "line 2", "line 2", "line 5", "hello"])
    assert other == ["hello"]
    compare_lines("job-1", "here", 4, counts, outcome)
    assert (outcome.lines_lost, outcome.lines_duplicated) == (2, 1)  # 3 and 4; 2 twice
    assert not outcome.correct


def test_a_stopped_job_is_held_only_to_what_its_container_surely_printed():
    tracked = Tracked("job-1", lines=100, interval=0.2)
    ran_4s = Container(creates=1, starts=1, started_at=10.0, died_at=14.0, exit_code=143)
    assert printed_lines(tracked, "canceled", ran_4s) == 16  # 4 s / (0.2 s x 1.25)
    assert printed_lines(tracked, "succeeded", ran_4s) == 100
    assert printed_lines(tracked, "canceled", Container(creates=1)) == 0  # never started


def test_judge_a_job_canceled_before_its_running_container_was_followed():
    """Issue 14, point 3, as the suite sees it: canceled, billed 0, no lines, container ran."""
    outcome = Outcome()
    tracked = Tracked("job-1", lines=75, interval=0.2, expect="canceled")
    container = Container(
        creates=1, starts=1, started_at=0.0, died_at=4.0, exit_code=137, destroyed=True
    )
    job = {"status": "canceled", "billedSeconds": 0}
    judge(tracked, job, container, [], outcome, settle=100)
    assert outcome.wrong == 1
    assert outcome.lines_lost == 16
    assert not outcome.correct


def test_judge_counts_a_second_started_container_but_not_one_removed_unstarted():
    job = {"status": "succeeded", "exitCode": 0}
    lines = ["line 1", "line 2"]
    tracked = Tracked("job-1", lines=2, interval=0.1)
    remade = Outcome()
    judge(tracked, job, Container(creates=2, starts=1, destroyed=True), lines, remade, settle=1)
    assert remade.correct
    assert remade.info
    twice = Outcome()
    judge(tracked, job, Container(creates=2, starts=2, destroyed=True), lines, twice, settle=1)
    assert twice.twice == 1


def test_the_receiver_reads_the_frames_log_streams_send(tmp_path):
    receiver = Receiver(make_pki(tmp_path)[1])
    prefix = message_prefix(
        hostname="chaos", app_name="srv-1", procid="job-7", msgid="job", params={"job": "job-7"}
    )

    class Line:
        def __init__(self, seq, text):
            self.seq, self.stream, self.text = seq, 1 + seq % 2, text
            self.timestamp = datetime.now(UTC)

    data = frames(prefix, [Line(1, "line 1"), Line(2, "line 2"), Line(3, "line 2")]).decode()
    while data:
        length, rest = data.split(" ", 1)
        receiver._message(rest[: int(length)])
        data = rest[int(length) :]
    assert receiver.counts("job-7") == Counter({1: 1, 2: 2})


def test_the_table_says_which_rows_are_not_all_zero():
    good, bad = table.Row("good"), table.Row("bad")
    good.add(1, Outcome(jobs=2))
    bad.add(1, Outcome(jobs=2, api_5xx=3, notes=["API: POST -> 500"]))
    assert good.clean
    assert not bad.clean
    text = table.render([good, bad])
    assert text.splitlines()[0].startswith("| trial")
    assert "| bad " in text
    assert "run 1: API: POST -> 500" in table.render_notes([good, bad])


def test_a_broken_harness_still_stops_every_part_and_exits_2(monkeypatch, capsys):
    """A bug in the suite itself (not a PartError) must not leave dockerd, PostgreSQL and Redis
    running behind it, and must say so with its own exit status, not a traceback alone."""
    import chaos.__main__ as entry

    stopped = []

    class BrokenParts:
        def __init__(self, keep):
            self.root = "/nowhere"

        def start_services(self, say):
            raise RuntimeError("the harness tripped")

        def teardown(self):
            stopped.append(True)

    monkeypatch.setattr(entry, "Parts", BrokenParts)
    assert entry.main(["--quick", "--trial", "redis-restart"]) == 2
    assert stopped == [True]
    out = capsys.readouterr()
    assert "the chaos harness failed" in out.out
    assert "RuntimeError: the harness tripped" in out.err

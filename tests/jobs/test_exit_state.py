"""The exit of a container killed for memory is recorded as ``oomKilled`` even when the engine's
OOM event lands a moment after the exit (``Supervisor._exit_state``), and the supervisor's one
loop never waits for it: a job that exits 137 on purpose delays only its own end. The engine's
order of the two events cannot be forced on a real engine, so an engine that answers from a
script stands in for it here; the real OOM kills are in tests/e2e/test_limits.py and
tests/cli/test_cli_live.py."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import supervisor as supervisor_module
from jobs.models import Job
from jobs.supervisor import OOM_SETTLE, Supervisor


class Engine:
    """Inspects of one exited container, which ended ``ago`` and says OOMKilled from the
    ``late``-th inspect on (never with None)."""

    def __init__(self, exit_code: int, ago: timedelta, late: int | None = None) -> None:
        self.exit_code, self.late, self.inspects = exit_code, late, 0
        self.finished = (timezone.now() - ago).isoformat().replace("+00:00", "Z")
        self.api = self

    def inspect_container(self, container_id: str) -> dict:
        self.inspects += 1
        oom = self.late is not None and self.inspects >= self.late
        state = {"ExitCode": self.exit_code, "OOMKilled": oom, "FinishedAt": self.finished}
        return {"Id": container_id, "State": state}


@pytest.fixture
def no_waiting(monkeypatch):
    """The pass must not sleep (the first fix slept 0.3 s a killed job on the one loop)."""

    def refuse(seconds):
        raise AssertionError(f"the supervisor's pass slept {seconds} s")

    monkeypatch.setattr(supervisor_module.time, "sleep", refuse)


def exit_state(engine: Engine, job: Job) -> dict | None:
    supervisor = Supervisor(interval=0.1)
    supervisor.client = engine  # type: ignore[assignment]
    return supervisor._exit_state("c0ffee", job)


def test_an_oom_kill_the_engine_records_after_the_exit_is_seen_by_a_later_pass(no_waiting):
    engine = Engine(137, timedelta(0), late=2)
    assert exit_state(engine, Job()) is None  # this pass records nothing
    state = exit_state(engine, Job())  # the next pass: the engine has said it now
    assert state is not None
    assert state["State"]["OOMKilled"] is True


def test_a_kill_past_the_settle_time_is_recorded_as_it_is(no_waiting):
    engine = Engine(137, OOM_SETTLE + timedelta(seconds=1))
    state = exit_state(engine, Job())
    assert state is not None
    assert state["State"]["OOMKilled"] is False
    assert engine.inspects == 1


def test_other_exits_and_canceled_jobs_are_recorded_at_once(no_waiting):
    for code, job in ((0, Job()), (3, Job()), (137, Job(cancel_requested_at=timezone.now()))):
        engine = Engine(code, timedelta(0))
        assert exit_state(engine, job) is not None, code
        assert engine.inspects == 1, code


def test_jobs_exiting_137_on_purpose_do_not_hold_up_the_pass(no_waiting):
    """A hostile workspace's 100 jobs that `exit 137` at once: the pass that sees them all
    spends no time waiting on them (0.3 s each, 30 s, with the first fix)."""
    started = time.monotonic()
    for _ in range(100):
        assert exit_state(Engine(137, timedelta(0)), Job()) is None
    assert time.monotonic() - started < 2

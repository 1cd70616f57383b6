"""The exit of a container killed for memory is recorded as ``oomKilled`` even when the engine's
OOM event lands a moment after the exit (``Supervisor._exit_state``). The engine's order of the
two events cannot be forced on a real engine, so an engine that answers a few inspects late
stands in for it here; the real OOM kills are in tests/e2e/test_limits.py and
tests/cli/test_cli_live.py."""

from django.utils import timezone

from jobs import supervisor as supervisor_module
from jobs.models import Job
from jobs.supervisor import Supervisor


class LateEngine:
    """Inspects of one exited container: OOMKilled becomes true from the ``late``-th on."""

    def __init__(self, exit_code: int, late: int | None) -> None:
        self.exit_code, self.late, self.inspects = exit_code, late, 0
        self.api = self

    def inspect_container(self, container_id: str) -> dict:
        self.inspects += 1
        oom = self.late is not None and self.inspects >= self.late
        return {"Id": container_id, "State": {"ExitCode": self.exit_code, "OOMKilled": oom}}


def exit_state(engine: LateEngine, job: Job, monkeypatch) -> dict:
    monkeypatch.setattr(supervisor_module, "OOM_SETTLE_WAIT", 0.001)
    supervisor = Supervisor(interval=0.1)
    supervisor.client = engine  # type: ignore[assignment]
    return supervisor._exit_state("c0ffee", job)["State"]


def test_an_oom_kill_the_engine_records_after_the_exit_is_seen(monkeypatch):
    engine = LateEngine(137, late=3)
    assert exit_state(engine, Job(), monkeypatch)["OOMKilled"] is True
    assert engine.inspects == 3


def test_a_plain_kill_is_asked_about_a_few_times_only(monkeypatch):
    engine = LateEngine(137, late=None)
    assert exit_state(engine, Job(), monkeypatch)["OOMKilled"] is False
    assert engine.inspects == 1 + supervisor_module.OOM_SETTLE_TRIES


def test_other_exits_and_canceled_jobs_are_inspected_once(monkeypatch):
    for code, job in ((0, Job()), (3, Job()), (137, Job(cancel_requested_at=timezone.now()))):
        engine = LateEngine(code, late=None)
        exit_state(engine, job, monkeypatch)
        assert engine.inspects == 1, code

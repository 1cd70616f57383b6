"""The runner backend interface (JOB_BACKEND): start, stop, observe, remove."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from jobs.models import Job
    from jobs.runner import StartOutcome


@dataclass(frozen=True)
class Observation:
    """What a backend sees of a job's container (or task): ``state`` is one of ``absent``
    (nothing exists), ``waiting`` (not placed or not started yet; ``note`` says why),
    ``running`` or ``exited``; ``exit_code`` and ``oom_killed`` once exited; ``host`` the
    engine (or swarm node) it is on; ``lost`` why it can no longer be followed (its node is
    down), else "". ``raw`` is the engine's own view, for logging."""

    state: str
    exit_code: int | None = None
    oom_killed: bool = False
    note: str = ""
    host: str = ""
    lost: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)


class Backend(Protocol):
    name: str

    def start(self, job_id: str) -> StartOutcome:
        """Make a pending job's container exist and run (or hand it to the scheduler): safe to
        call any number of times for one job (a second delivery, a resent message)."""
        ...

    def stop(self, job: Job) -> bool:
        """Stop the job's container: SIGTERM, JOB_STOP_GRACE seconds, SIGKILL. Returns whether
        something was asked to stop."""
        ...

    def observe(self, job: Job) -> Observation:
        """The job's container (or task) as the engine sees it now."""
        ...

    def remove(self, job: Job) -> None:
        """Remove what is left of a recorded job (its container, or its swarm service)."""
        ...

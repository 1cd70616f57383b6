"""What the suite counts, and how it judges a job.

Every job the suite runs prints a known sequence, ``line 1`` … ``line N`` (odd lines on stdout,
even ones on stderr) with a pause between them, so what is missing or doubled in its stored log
(``GET /v1/logs``) or at a log-stream receiver is plain. How often each job's container was made
and started comes from the private engine's own event stream (``create`` and ``start`` events
per ``oneoff.job`` label), which nothing in Oneoff can hide or repeat.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import docker

FINAL = ("succeeded", "failed", "canceled")
LINE = re.compile(r"^line (\d+)$")
COMMAND = re.compile(r"-le (\d+) \].*sleep ([0-9.]+);")


def job_command(lines: int, interval: float) -> str:
    """A shell loop printing ``line 1`` … ``line <lines>``, ``interval`` seconds apart."""
    return (
        f"i=1; while [ $i -le {lines} ]; do "
        'if [ $((i % 2)) -eq 0 ]; then echo "line $i" >&2; else echo "line $i"; fi; '
        f"i=$((i + 1)); sleep {interval}; done"
    )


def parse_command(command: str) -> tuple[int, float] | None:
    """(lines, interval) of a command made by ``job_command``."""
    match = COMMAND.search(command)
    return (int(match[1]), float(match[2])) if match else None


@dataclass
class Container:
    """What the engine said about one job's containers."""

    creates: int = 0
    starts: int = 0
    started_at: float | None = None  # seconds (engine clock) of the first start
    died_at: float | None = None
    exit_code: int | None = None
    destroyed: bool = False

    @property
    def ran_for(self) -> float | None:
        if self.started_at is None or self.died_at is None:
            return None
        return max(0.0, self.died_at - self.started_at)


class EngineEvents(threading.Thread):
    """Follows the private engine's container events of one installation (its instance label),
    reconnecting from the last event seen when the engine goes away and comes back."""

    def __init__(self, docker_host: str, instance: str) -> None:
        super().__init__(name=f"chaos-events-{instance}", daemon=True)
        self.docker_host = docker_host
        self.instance = instance
        self.containers: dict[str, Container] = {}
        self.seen: set[tuple[str, str, int]] = set()
        self.since = int(time.time())
        self.changed = threading.Condition()
        self.stopped = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        filters = {"type": ["container"], "label": [f"oneoff.instance={self.instance}"]}
        while not self.stopped.is_set():
            client = None
            try:
                client = docker.DockerClient(base_url=self.docker_host, timeout=10)
                stream = client.api.events(since=self.since, filters=filters, decode=True)
                self.connected.set()
                for event in stream:
                    self.record(event)
                    if self.stopped.is_set():
                        break
            except Exception:
                self.connected.clear()
                time.sleep(0.3)
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()

    def record(self, event: dict) -> None:
        nano = int(event.get("timeNano") or 0)
        key = (event.get("id", ""), event.get("Action", ""), nano)
        attributes = event.get("Actor", {}).get("Attributes", {})
        job = attributes.get("oneoff.job")
        with self.changed:
            if nano:
                # Whole seconds (the SDK's type): a reconnect replays a second, deduplicated.
                self.since = nano // 1_000_000_000
            if key in self.seen or not job:
                return
            self.seen.add(key)
            c = self.containers.setdefault(job, Container())
            at = nano / 1e9
            action = key[1]
            if action == "create":
                c.creates += 1
            elif action == "start":
                c.starts += 1
                c.started_at = c.started_at or at
            elif action == "die":
                c.died_at = at
                with contextlib.suppress(TypeError, ValueError):
                    c.exit_code = int(attributes.get("exitCode"))
            elif action == "destroy":
                c.destroyed = True
            self.changed.notify_all()

    def of(self, job_id: str) -> Container:
        with self.changed:
            c = self.containers.get(job_id, Container())
            return Container(**vars(c))

    def wait_for(self, job_id: str, action: str, timeout: float) -> bool:
        """Until ``job_id``'s container had an event ``action`` (create, start, die, destroy)."""
        fields = {"create": "creates", "start": "starts", "die": "died_at", "destroy": "destroyed"}
        deadline = time.monotonic() + timeout
        with self.changed:
            while not getattr(self.containers.get(job_id, Container()), fields[action]):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True

    def stop(self) -> None:
        self.stopped.set()


@dataclass
class Tracked:
    """A job the suite expects to end a certain way."""

    id: str
    lines: int
    interval: float
    expect: str = "succeeded"  # or "canceled"
    origin: str = "201"  # or how it was found: "created although its POST got no 201"


@dataclass
class Outcome:
    """The counts of one run (a row of the table adds these up)."""

    jobs: int = 0
    lost: int = 0
    twice: int = 0
    lines_lost: int = 0
    lines_duplicated: int = 0
    api_5xx: int = 0
    crashes: int = 0
    wrong: int = 0  # jobs that ended in a wrong state, or were acknowledged wrongly
    notes: list[str] = field(default_factory=list)  # what made it wrong
    info: list[str] = field(default_factory=list)  # worth knowing, wrong or not

    @property
    def correct(self) -> bool:
        return not (
            self.lost
            or self.twice
            or self.lines_lost
            or self.lines_duplicated
            or self.api_5xx
            or self.crashes
            or self.wrong
        )


def line_numbers(messages: Iterable[str]) -> tuple[Counter[int], list[str]]:
    """How often each numbered line appears, and the messages that are no numbered line."""
    counts: Counter[int] = Counter()
    other = []
    for message in messages:
        match = LINE.match(message.strip())
        if match:
            counts[int(match[1])] += 1
        else:
            other.append(message)
    return counts, other


def printed_lines(tracked: Tracked, status: str, container: Container) -> int:
    """How many lines the job's command certainly printed: all of them when it ran to its end;
    for a stopped or killed one, a safe lower bound from how long its container ran."""
    if container.starts == 0:
        return 0
    if status == "succeeded" or container.exit_code == 0:
        return tracked.lines
    ran = container.ran_for
    if ran is None:
        return 0
    # Line i is printed (i - 1) * interval after the start, plus a shell's fork per line: count
    # only what 1.25 times the pause would have printed, to never over-count.
    return max(0, min(tracked.lines, int(ran / (tracked.interval * 1.25))))


def compare_lines(
    job_id: str, where: str, printed: int, counts: Counter[int], outcome: Outcome
) -> None:
    """Lines lost (printed, or below one that arrived, but missing) and duplicated."""
    highest = max(counts, default=0)
    lost = [i for i in range(1, max(printed, highest) + 1) if counts[i] == 0]
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    if lost:
        outcome.lines_lost += len(lost)
        shown = ", ".join(map(str, lost[:8])) + (" …" if len(lost) > 8 else "")
        outcome.notes.append(f"{job_id}: {len(lost)} of {printed} lines missing {where} ({shown})")
    if duplicated:
        outcome.lines_duplicated += duplicated
        twice = sorted(i for i, n in counts.items() if n > 1)
        shown = ", ".join(map(str, twice[:8]))
        outcome.notes.append(f"{job_id}: {duplicated} lines twice {where} (line {shown})")


def judge(
    tracked: Tracked,
    job: dict | None,
    container: Container,
    messages: list[str],
    outcome: Outcome,
    *,
    settle: float,
) -> None:
    """Add one job's verdict to ``outcome``."""
    outcome.jobs += 1
    status = job["status"] if job else "missing"
    if status not in FINAL:
        outcome.lost += 1
        outcome.notes.append(f"{tracked.id}: still {status} {settle:.0f} s after the trouble ended")
    if container.starts > 1:
        outcome.twice += 1
        outcome.notes.append(
            f"{tracked.id}: {container.creates} containers created, {container.starts} started"
        )
    elif container.creates > 1:
        # Made, removed unstarted (a start cut short), made again: nothing ran twice.
        outcome.info.append(f"{tracked.id}: {container.creates} containers created, 1 started")
    reason = (job or {}).get("reason")
    if status in FINAL and status != tracked.expect:
        outcome.wrong += 1
        ran_for = f", its container ran {container.ran_for:.1f} s" if container.ran_for else ""
        exit_code = (job or {}).get("exitCode")
        outcome.notes.append(
            f"{tracked.id}: ended {status} {reason or ''} (exit {exit_code}{ran_for}), "
            f"expected {tracked.expect}"
        )
    if status == "canceled" and tracked.expect == "canceled" and container.starts:
        ran = container.ran_for or 0.0
        billed = (job or {}).get("billedSeconds") or 0
        if ran >= 2 and billed < 1:
            outcome.wrong += 1
            outcome.notes.append(
                f"{tracked.id}: canceled and billed {billed} s although its container ran "
                f"{ran:.1f} s"
            )
    if status in FINAL and container.creates and not container.destroyed:
        outcome.wrong += 1
        outcome.notes.append(f"{tracked.id}: {status}, but its container was never removed")
    counts, other = line_numbers(messages)
    if other:
        outcome.notes.append(f"{tracked.id}: {len(other)} unexpected lines, e.g. {other[0][:80]!r}")
    if status in FINAL:
        compare_lines(tracked.id, "from GET /v1/logs", printed_lines(tracked, status, container),
                      counts, outcome)  # fmt: skip

"""One run of a trial: the installation it drives, the jobs it posts, the trouble it makes, and
the bounded wait and the check that turn it into an ``Outcome``."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from celery import Celery

from chaos.api import Answer, Api
from chaos.check import (
    FINAL,
    EngineEvents,
    Outcome,
    Tracked,
    job_command,
    judge,
    parse_command,
)
from chaos.parts import BASE_IMAGE, Oneoff, PartError, Parts, wait_until


@dataclass(frozen=True)
class Sizes:
    """How big and how long the trials are: full mode (the README's table) or quick (CI)."""

    quick: bool
    runs: int
    jobs: int  # jobs a run starts before making trouble
    lines: int  # lines each of them prints
    interval: float  # seconds between two lines
    postgres_outage: float
    redis_outage: float
    engine_outage: float
    receiver_down: float
    load_jobs: int
    load_threads: int
    settle: float  # seconds every job gets to end once the trouble is over


FULL = Sizes(
    quick=False, runs=10, jobs=4, lines=25, interval=0.2, postgres_outage=15, redis_outage=15,
    engine_outage=20, receiver_down=10, load_jobs=200, load_threads=16, settle=150,
)  # fmt: skip
QUICK = Sizes(
    quick=True, runs=1, jobs=2, lines=10, interval=0.2, postgres_outage=5, redis_outage=5,
    engine_outage=6, receiver_down=3, load_jobs=32, load_threads=16, settle=100,
)  # fmt: skip


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass
class Target:
    """One Oneoff installation the trials drive: its processes, its API with a key, the service
    jobs run on (an image service of the base image, built through the API), engine events."""

    stack: Oneoff
    api: Api
    owner_id: str
    service_id: str
    events: EngineEvents
    extras: dict[str, object] = field(default_factory=dict)  # what a trial keeps across runs
    _publisher: Celery | None = None

    def send_start(self, job_id: str) -> None:
        """Publish a job's start message once more, as the API's enqueue does (to the ``jobs``
        queue, where config/celery.py routes it)."""
        if self._publisher is None:
            self._publisher = Celery("chaos", broker=self.stack.broker_url, set_as_current=False)
        self._publisher.send_task("jobs.tasks.start_job", args=[job_id], queue="jobs")

    @classmethod
    def prepare(cls, stack: Oneoff) -> Target:
        key = stack.setup()
        stack.start()
        api = Api(stack.base_url, key)
        owner_id = api.owner_id()
        events = EngineEvents(stack.docker_host, stack.instance)
        events.start()
        service_id, build_id = api.create_image_service(owner_id, "chaos", BASE_IMAGE)

        def built() -> bool:
            answer = api.build(service_id, build_id)
            status = answer.body.get("status") if answer.ok else None
            if status in ("failed", "canceled"):
                raise PartError(f"the service's build {status}: {answer.body}")
            return status == "succeeded"

        wait_until(built, 180, "the chaos service's build", every=0.5)
        wait_until(events.connected.is_set, 30, "the engine's event stream")
        return cls(stack, api, owner_id, service_id, events)


@dataclass
class Run:
    target: Target
    parts: Parts
    sizes: Sizes
    number: int
    tracked: dict[str, Tracked] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    checks: list[Callable[[Outcome, dict[str, Tracked]], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.created_after = iso(datetime.now(UTC) - timedelta(seconds=1))
        self.counts_before = self.target.api.counts()
        self.crashes_before = len(self.target.stack.crashes)
        self.lock = threading.Lock()

    @property
    def api(self) -> Api:
        return self.target.api

    @property
    def stack(self) -> Oneoff:
        return self.target.stack

    @property
    def events(self) -> EngineEvents:
        return self.target.events

    # Jobs.

    def post(
        self, lines: int | None = None, interval: float | None = None, *, expect: str = "succeeded"
    ) -> str | None:
        lines = lines or self.sizes.lines
        interval = interval or self.sizes.interval
        answer = self.api.create_job(self.target.service_id, job_command(lines, interval))
        if answer.status == 201:
            job_id = str(answer.body["id"])
            with self.lock:
                self.tracked[job_id] = Tracked(job_id, lines, interval, expect)
            return job_id
        label = f"{answer.status}" if answer.status else "no answer"
        if answer.status == 503 and "retry-after" in answer.headers:
            label = "503 with Retry-After"
        with self.lock:
            self.refused[label] += 1
        return None

    def post_many(
        self, count: int, lines: int | None = None, interval: float | None = None
    ) -> list[str]:
        posted = [self.post(lines, interval) for _ in range(count)]
        return [job_id for job_id in posted if job_id]

    def cancel(self, job_id: str) -> Answer:
        self.tracked[job_id].expect = "canceled"
        return self.api.cancel(self.target.service_id, job_id)

    def status(self, job_id: str) -> str:
        answer = self.api.job(self.target.service_id, job_id)
        return str(answer.body["status"]) if answer.ok else f"unknown ({answer.status})"

    def wait_running(self, job_ids: list[str], *, lines: int = 2, timeout: float = 60) -> None:
        """Until every job runs (or ended) and has had time to print ``lines`` lines."""
        wait_until(
            lambda: all(self.status(j) in ("running", *FINAL) for j in job_ids),
            timeout,
            "the jobs to run",
            every=0.2,
        )
        time.sleep(lines * self.sizes.interval)

    def lines_for(self, seconds: float) -> int:
        """Lines a job prints in ``seconds``: for jobs that must outlast some trouble."""
        return int(seconds / self.sizes.interval) + 1

    @contextlib.contextmanager
    def posting(self, every: float = 1.0) -> Iterator[None]:
        """Meanwhile a client keeps creating short jobs (no Idempotency-Key, no retry: what it
        is told is what it believes) and reading the job list."""
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                self.post(5, 0.1)
                self.api.request("GET", f"/v1/services/{self.target.service_id}/jobs?limit=5")
                stop.wait(every)

        thread = threading.Thread(target=client, name="chaos-client", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(60)

    def disrupt(
        self, trouble: Callable[[], None], lasts: float, *, every: float = 1.0, burst: bool = False
    ) -> None:
        """The common shape of the part trials: jobs that print across the whole trouble are
        running, a client keeps posting (every ``every`` s: a restart is over in a moment),
        ``trouble()`` happens, and posting goes on 2 s after. With ``burst``, more jobs are
        posted just before the trouble, so that their starts meet it."""
        jobs = self.post_many(self.sizes.jobs, self.lines_for(lasts + 4))
        self.wait_running(jobs)
        with self.posting(every):
            if burst:
                self.post_many(self.sizes.jobs, 5, 0.1)
            trouble()
            time.sleep(2)

    # The check.

    def _adopt_unacknowledged(self) -> None:
        """Jobs that exist although their POST was not answered 201: a client retrying without
        an Idempotency-Key would have started each twice."""
        try:
            listed = self.api.jobs_since(self.target.service_id, self.created_after)
        except RuntimeError as exc:
            self.notes.append(f"could not list the run's jobs: {exc}")
            return
        for job in listed:
            if job["id"] in self.tracked:
                continue
            shape = parse_command(job.get("startCommand", ""))
            if shape is None:
                continue
            self.tracked[job["id"]] = Tracked(
                job["id"], shape[0], shape[1], origin="created although its POST got no 201"
            )

    def settle(self) -> Outcome:
        """Wait (bounded) for every job to end, then count."""
        deadline = time.monotonic() + self.sizes.settle
        self._adopt_unacknowledged()
        final: dict[str, dict | None] = {}
        last: dict[str, dict | None] = {}
        while True:
            for job_id in [j for j in self.tracked if j not in final]:
                answer = self.api.job(self.target.service_id, job_id)
                if answer.status == 404:
                    final[job_id] = last[job_id] = None
                elif answer.ok:
                    last[job_id] = answer.body
                    if answer.body["status"] in FINAL:
                        final[job_id] = answer.body
            if len(final) == len(self.tracked):
                before = len(self.tracked)
                self._adopt_unacknowledged()
                if len(self.tracked) == before:
                    break
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        # The supervisor removes a finished job's container within a pass or two.
        with contextlib.suppress(PartError):
            wait_until(
                lambda: all(
                    self.events.of(j).destroyed or not self.events.of(j).creates for j in final
                ),
                20,
                "containers to be removed",
                every=0.5,
            )

        outcome = Outcome()
        for job_id, tracked in self.tracked.items():
            job = last.get(job_id)
            messages: list[str] = []
            if job is not None and job["status"] in FINAL:
                start = iso(datetime.fromisoformat(job["createdAt"]) - timedelta(minutes=1))
                try:
                    lines = self.api.logs(self.target.owner_id, job_id, start)
                    messages = [line["message"] for line in lines]
                except RuntimeError as exc:
                    outcome.notes.append(str(exc))
            judge(
                tracked,
                job,
                self.events.of(job_id),
                messages,
                outcome,
                settle=self.sizes.settle,
            )
            if tracked.origin != "201":
                outcome.wrong += 1
                outcome.notes.append(
                    f"{job_id}: {tracked.origin} (it ended {(job or {}).get('status')})"
                )
        for check in self.checks:
            check(outcome, self.tracked)

        counts = self.api.counts().minus(self.counts_before)
        outcome.api_5xx = counts.server_errors
        outcome.notes += [f"API: {example}" for example in counts.examples[:3]]
        if counts.server_errors > 3:
            outcome.notes.append(f"API: … {counts.server_errors} server errors in all")
        if counts.unavailable:
            outcome.info.append(f"API: {counts.unavailable} answers 503 with Retry-After")
        if counts.no_answer:
            outcome.info.append(f"API: {counts.no_answer} requests got no answer")
        if self.refused:
            told = ", ".join(f"{label} x{n}" for label, n in sorted(self.refused.items()))
            outcome.info.append(f"POSTs that created no job as far as the client knows: {told}")
        delays = [
            (self.events.of(job_id).started_at or 0)
            - datetime.fromisoformat(job["createdAt"]).timestamp()
            for job_id, job in last.items()
            if job is not None and self.events.of(job_id).started_at
        ]
        if delays:
            outcome.info.append(f"slowest start: {max(delays):.1f} s after the POST")
        for crash in self.stack.crashes[self.crashes_before :]:
            outcome.crashes += 1
            last_line = crash.last_lines.strip().splitlines()[-1:] or [""]
            outcome.notes.append(
                f"{crash.name} exited by itself (status {crash.returncode}); restarted after "
                f"2 s; its last line: {last_line[0][:200]}"
            )
        outcome.notes = self.notes + outcome.notes
        outcome.info = self.info + outcome.info
        return outcome

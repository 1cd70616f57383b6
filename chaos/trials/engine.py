"""Trials on the Docker Engine (started with --live-restore, so containers outlive it): a
restart, and a stop of some seconds, while jobs run and a client keeps creating jobs."""

from __future__ import annotations

import contextlib
import threading
import time

import redis

from chaos.run import Run


class StartMessages(threading.Thread):
    """Counts the start messages published to the broker (Redis' MONITOR: each push of a
    ``jobs.tasks.start_job`` message, the API's, the sweep's and the retries' alike)."""

    def __init__(self, url: str) -> None:
        super().__init__(name="chaos-start-messages", daemon=True)
        self.url = url
        self.count = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(self.url)
            with client.monitor() as monitor:
                for command in monitor.listen():
                    if self.stopped.is_set():
                        return
                    text = str(command.get("command", ""))
                    if text.startswith(("LPUSH", "RPUSH")) and "jobs.tasks.start_job" in text:
                        self.count += 1

    def stop(self) -> None:
        self.stopped.set()
        with contextlib.suppress(Exception):
            redis.Redis.from_url(self.url).ping()  # wakes the monitor up to see the flag


def restart(run: Run) -> None:
    run.disrupt(run.parts.engine.restart, lasts=5, every=0.25)


def outage(run: Run) -> None:
    engine = run.parts.engine
    messages = StartMessages(run.parts.redis.url(0))
    messages.start()

    def trouble() -> None:
        engine.stop()
        before, posted = messages.count, len(run.tracked)
        time.sleep(run.sizes.engine_outage)
        published, waiting = messages.count - before, len(run.tracked) - posted
        engine.start()
        run.info.append(
            f"{published} start messages published in the {run.sizes.engine_outage:.0f} s the "
            f"engine was down, for {waiting} jobs posted meanwhile"
        )

    try:
        run.disrupt(trouble, run.sizes.engine_outage + 3)
    finally:
        messages.stop()

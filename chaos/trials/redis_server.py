"""Trials on Redis (Celery's broker and the rate limiter's cache): a restart and an outage,
while jobs run and a client keeps creating jobs and reading."""

from __future__ import annotations

import time

from chaos.run import Run


def restart(run: Run) -> None:
    run.disrupt(run.parts.redis.restart, lasts=3, every=0.25)


def outage(run: Run) -> None:
    redis = run.parts.redis

    def trouble() -> None:
        redis.stop()
        time.sleep(run.sizes.redis_outage)
        redis.start()

    run.disrupt(trouble, run.sizes.redis_outage)

"""Trials on PostgreSQL: a restart (fast shutdown, start) and an outage, while jobs run and a
client keeps creating jobs and reading; a few jobs are posted just before, so that their start
(a database write after the container started) meets the trouble."""

from __future__ import annotations

import time

from chaos.run import Run


def restart(run: Run) -> None:
    run.disrupt(run.parts.postgres.restart, lasts=3, every=0.25, burst=True)


def outage(run: Run) -> None:
    postgres = run.parts.postgres

    def trouble() -> None:
        postgres.stop()
        time.sleep(run.sizes.postgres_outage)
        postgres.start()

    run.disrupt(trouble, run.sizes.postgres_outage, burst=True)

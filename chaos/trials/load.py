"""Load: many jobs created at once from many client threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from chaos.run import Run


def many_jobs(run: Run) -> None:
    """``load_jobs`` short jobs (5 lines) posted from ``load_threads`` threads at once."""
    with ThreadPoolExecutor(run.sizes.load_threads) as pool:
        list(pool.map(lambda _: run.post(5, 0.05), range(run.sizes.load_jobs)))

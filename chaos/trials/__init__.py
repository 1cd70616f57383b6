"""The trials, in the order the suite runs them. Each is a function of a ``Run`` that starts
jobs and makes its trouble; the run's ``settle`` then waits for every job and counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chaos.run import Run, Target
from chaos.trials import engine, load, logstream, postgres, redis_server, worker


@dataclass(frozen=True)
class Trial:
    name: str
    run: Callable[[Run], None]
    about: str
    target: str = "production"  # or "embedded": SQLite and the filesystem broker
    after: Callable[[Target], None] | None = None  # once, after its last run


TRIALS = [
    Trial(
        "worker-kill-mid-job",
        worker.kill_mid_job,
        "SIGKILL of the worker while its jobs print; back 1 s later",
    ),
    Trial(
        "worker-kill-after-post",
        worker.kill_after_post,
        "SIGKILL of the worker the moment POST answered; back 1 s later",
    ),
    Trial(
        "postgres-restart",
        postgres.restart,
        "PostgreSQL restarted (fast shutdown) while jobs run and a client posts",
    ),
    Trial(
        "postgres-outage",
        postgres.outage,
        "PostgreSQL stopped for 15 s (quick: 5 s) while jobs run and a client posts",
    ),
    Trial(
        "redis-restart",
        redis_server.restart,
        "Redis (broker and cache) restarted while jobs run and a client posts",
    ),
    Trial(
        "redis-outage",
        redis_server.outage,
        "Redis stopped for 15 s (quick: 5 s) while jobs run and a client posts",
    ),
    Trial(
        "docker-restart",
        engine.restart,
        "the Docker Engine (live-restore) restarted while jobs run",
    ),
    Trial(
        "docker-stop",
        engine.outage,
        "the Docker Engine stopped for 20 s (quick: 6 s) while jobs run and a client posts",
    ),
    Trial(
        "duplicate-start",
        worker.duplicate_start,
        "each job's start message published twice more (at once, and while it runs)",
    ),
    Trial(
        "cancel-in-recovery",
        worker.cancel_in_recovery,
        "worker killed between container start and its record; the job canceled",
    ),
    Trial(
        "logstream-receiver-down",
        logstream.receiver_down,
        "the log stream's TLS receiver down mid-job for 10 s (quick: 3 s)",
        after=logstream.close,
    ),
    Trial("load-16-threads", load.many_jobs, "200 jobs (quick: 32) posted from 16 threads at once"),
    Trial(
        "embedded-worker-kill",
        worker.kill_mid_job,
        "make run's SQLite + filesystem broker, worker SIGKILL mid-job",
        target="embedded",
    ),
]

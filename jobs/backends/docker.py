"""JOB_BACKEND=docker: each job's container on the worker's own Docker Engine (jobs/runner.py)."""

from __future__ import annotations

from django.conf import settings
from docker.errors import NotFound

from jobs import runner
from jobs.backends.base import Observation
from jobs.models import Job


class DockerBackend:
    name = "docker"

    def start(self, job_id: str) -> runner.StartOutcome:
        return runner.start(job_id)

    def stop(self, job: Job) -> bool:
        client = runner.new_client(timeout=settings.JOB_STOP_GRACE + runner.DOCKER_TIMEOUT)
        try:
            client.api.stop(job.container_id or job.container_name, timeout=settings.JOB_STOP_GRACE)
            return True
        except NotFound:
            return False
        finally:
            client.close()

    def observe(self, job: Job) -> Observation:
        try:
            attrs = runner.get_client().api.inspect_container(
                job.container_id or job.container_name
            )
        except NotFound:
            return Observation("absent")
        state = attrs.get("State") or {}
        status = state.get("Status")
        if status in ("exited", "dead"):
            return Observation(
                "exited",
                exit_code=state.get("ExitCode"),
                oom_killed=bool(state.get("OOMKilled")),
                host=settings.RUNNER_HOST,
                raw=state,
            )
        if status in ("running", "paused", "restarting", "removing"):
            return Observation("running", host=settings.RUNNER_HOST, raw=state)
        return Observation("waiting", note="created, not started", raw=state)

    def remove(self, job: Job) -> None:
        runner.remove(runner.get_client(), job.container_id or job.container_name)

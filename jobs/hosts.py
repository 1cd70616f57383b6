"""The hosts jobs run on, for the dashboard's hosts page (platform staff only).

In swarm mode (``JOB_BACKEND=swarm``) they come from the manager's engine (``DOCKER_HOST``): its
nodes (name, state, availability, total CPU and memory) and the tasks that hold resources on them
(the reservations of tasks assigned but not yet ended; running jobs are the tasks in state
``running``). In docker mode they are the ``RunnerHost`` rows (alive while they heart-beat within
``JOB_HOST_TIMEOUT``), their running jobs and the plans' CPU and memory those reserve, with the
totals of the one engine this process reaches (on the row of its own ``RUNNER_HOST``).
"""

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import docker
from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone
from docker.errors import DockerException

from jobs.runner import LABEL_INSTANCE

# Task states that hold a node's reserved resources (Swarm's scheduler counts them as taken).
HOLDING = {"assigned", "accepted", "preparing", "ready", "starting", "running"}
MB = 1024 * 1024


@dataclass
class Host:
    name: str
    state: str  # ready / down / unknown (swarm); up / lost (docker)
    availability: str  # active / pause / drain (swarm); engine ok / engine error (docker)
    role: str = ""
    cpu_reserved: float = 0.0
    cpu_total: float | None = None
    memory_reserved_mb: int = 0
    memory_total_mb: int | None = None
    running: int = 0
    note: str = ""

    @property
    def healthy(self) -> bool:
        return self.state in ("ready", "up") and self.availability in ("active", "engine ok")


def backend() -> str:
    return getattr(settings, "JOB_BACKEND", "docker") or "docker"


def hosts() -> tuple[list[Host], str]:
    """The hosts and an error to show (the engine did not answer), or ""."""
    try:
        if backend() == "swarm":
            with contextlib.closing(docker.from_env(timeout=5)) as client:
                return swarm_hosts(client), ""
        return docker_hosts(), ""
    except (DockerException, OSError) as exc:
        return ([] if backend() == "swarm" else docker_hosts(engine=False)), (
            f"the Docker Engine did not answer: {type(exc).__name__}"
        )


def swarm_hosts(client: docker.DockerClient) -> list[Host]:
    rows: dict[str, Host] = {}
    for node in client.nodes.list():
        attrs = node.attrs
        description = attrs.get("Description") or {}
        resources = description.get("Resources") or {}
        spec = attrs.get("Spec") or {}
        rows[attrs["ID"]] = Host(
            name=spec.get("Name") or description.get("Hostname") or attrs["ID"][:12],
            state=(attrs.get("Status") or {}).get("State", "unknown"),
            availability=spec.get("Availability", "unknown"),
            role=spec.get("Role", ""),
            cpu_total=resources.get("NanoCPUs", 0) / 1e9,
            memory_total_mb=resources.get("MemoryBytes", 0) // MB,
            note=(attrs.get("Status") or {}).get("Message", ""),
        )
    # Reservations count whatever holds them; running jobs only this installation's services.
    ours = {
        service["ID"]
        for service in client.api.services(
            filters={"label": f"{LABEL_INSTANCE}={settings.ONEOFF_INSTANCE}"}
        )
    }
    for task in client.api.tasks():
        row = rows.get(task.get("NodeID", ""))
        state = (task.get("Status") or {}).get("State", "")
        if row is None or state not in HOLDING:
            continue
        reserved = ((task.get("Spec") or {}).get("Resources") or {}).get("Reservations") or {}
        row.cpu_reserved += reserved.get("NanoCPUs", 0) / 1e9
        row.memory_reserved_mb += reserved.get("MemoryBytes", 0) // MB
        row.running += state == "running" and task.get("ServiceID") in ours
    return sorted(rows.values(), key=lambda h: (h.role != "manager", h.name))


def docker_hosts(*, engine: bool = True) -> list[Host]:
    from jobs.models import Job, JobStatus, RunnerHost

    alive_since = timezone.now() - timedelta(seconds=settings.JOB_HOST_TIMEOUT)
    usage: dict[str, dict] = {
        row["host"]: dict(row)
        for row in Job.objects.filter(status=JobStatus.RUNNING)
        .values("host")
        .annotate(count=Count("id"), cpu=Sum("plan__cpu"), memory=Sum("plan__memory_mb"))
    }
    info = {}
    if engine:
        with contextlib.closing(docker.from_env(timeout=5)) as client:
            info = client.info()
    rows = []
    for runner in RunnerHost.objects.order_by("name"):
        used: dict = usage.get(runner.name, {})
        own = runner.name == settings.RUNNER_HOST and info
        rows.append(
            Host(
                name=runner.name,
                state="up" if runner.last_seen_at >= alive_since else "lost",
                availability="engine ok" if runner.docker_ok else "engine error",
                cpu_reserved=float(used.get("cpu") or Decimal(0)),
                cpu_total=float(info["NCPU"]) if own else None,
                memory_reserved_mb=int(used.get("memory") or 0),
                memory_total_mb=int(info["MemTotal"]) // MB if own else None,
                running=int(used.get("count") or 0),
                note=f"last seen {runner.last_seen_at:%Y-%m-%d %H:%M:%S} UTC",
            )
        )
    return rows

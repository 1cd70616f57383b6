"""Swarm benchmark (issue 19): create -> running p50 with JOB_BACKEND=swarm, beside the plain
docker backend and a bare ``docker service create --mode replicated-job``, in one run on one
engine.

It starts a Docker Engine of its own in a network namespace of its own, a single-node swarm
manager (tests/swarm/engine.py: never the machine's main engine), makes its own database
(oneoff_bench_swarm), and runs the same job (``true``) N times one after the other:

- docker: JOB_BACKEND=docker, a worker whose DOCKER_HOST is that engine (create -> startedAt);
- swarm: JOB_BACKEND=swarm, the same worker restarted (create -> startedAt: the manager creates
  the service, Swarm places and starts the task, the node's supervisor marks the job running);
- bare: the Docker SDK's ``create_service`` of the same image and resources, replicated-job,
  restart condition none (call -> the container's StartedAt), and a bare ``docker run -d``
  equivalent (``containers.run``, detach) for scale.

Then, on the three-node lab (scripts/swarm-lab.sh, lab id ``BENCH_LAB_ID``, default 41, up and
down by the benchmark), with a worker on every node: 100 jobs (``sleep 1``, 256 MB / 0.25 CPU)
created at once, wall time until all finished and how many ran on each node, beside 100 bare
replicated-job services of the same size created at once on the manager.

`--quick` runs 3 jobs each and 6 over the lab (CI).
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, bench_service, percentile, with_own_database

CELERY = str(Path(sys.executable).with_name("celery"))


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def docker_time(value: str) -> datetime:
    from jobs.runner import docker_time as parse

    parsed = parse(value)
    assert parsed is not None
    return parsed


def start_worker(var_dir: str, env: dict) -> subprocess.Popen:
    from django.conf import settings

    from config import secrets

    log_path = Path(var_dir) / "worker.log"
    log = open(log_path, "ab")  # noqa: SIM115 - the child writes to it
    offset = log.tell()
    proc = subprocess.Popen(
        [
            CELERY,
            "-A",
            "config",
            "worker",
            "-Q",
            "jobs",
            "--loglevel=INFO",
            "--concurrency=4",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env={**os.environ, **secrets.environment(settings), **env, "LOG_LEVEL": "INFO"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read()
        if b" ready." in text and b"supervisor running" in text:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit("the worker did not start:\n" + log_path.read_text()[-3000:])


def stop_worker(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)


def route_starts(queue: str | None) -> None:
    """Start messages to the ``swarm`` queue (JOB_BACKEND=swarm) or the default one."""
    from config.celery import app

    routes = dict(app.conf.task_routes)
    routes.pop("jobs.tasks.start_job", None)
    if queue:
        routes["jobs.tasks.start_job"] = {"queue": queue}
    app.conf.task_routes = routes
    app.amqp.flush_routes()


def run_jobs(service, n: int) -> list[float]:
    from jobs.launch import create_job
    from jobs.models import Job

    to_running = []
    for _ in range(n):
        job = create_job(service, "true")
        deadline = time.monotonic() + 60
        while True:
            job.refresh_from_db()
            if job.finished_at is not None:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job.id} did not finish in 60 s ({job.status}: {job.note})")
            time.sleep(0.01)
        job = Job.objects.get(pk=job.pk)
        assert job.status == "succeeded", (job.status, job.reason)
        to_running.append((job.started_at - job.created_at).total_seconds())
    return to_running


def bare_services(client, image: str, n: int) -> list[float]:
    from docker import types

    times = []
    for _ in range(n):
        name = f"bench-bare-{uuid.uuid4().hex[:8]}"
        resources = types.Resources(
            cpu_limit=500_000_000,
            mem_limit=512 << 20,
            cpu_reservation=500_000_000,
            mem_reservation=512 << 20,
        )
        template = types.TaskTemplate(
            types.ContainerSpec(image=image, command=["true"]),
            resources=resources,
            restart_policy=types.RestartPolicy(condition="none"),
        )
        called = datetime.now(UTC)
        client.api.create_service(template, name=name, mode=types.ServiceMode("replicated-job"))
        deadline = time.monotonic() + 60
        container = ""
        while not container:
            for task in client.api.tasks(filters={"service": name}):
                status = task.get("Status") or {}
                if status.get("State") in ("running", "complete", "failed"):
                    container = (status.get("ContainerStatus") or {}).get("ContainerID", "")
            if time.monotonic() > deadline:
                raise SystemExit(f"bare service {name} did not start in 60 s")
            time.sleep(0.005)
        started = docker_time(client.api.inspect_container(container)["State"]["StartedAt"])
        times.append((started - called).total_seconds())
        client.api.remove_service(name)
    return times


def bare_runs(client, image: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        called = datetime.now(UTC)
        container = client.containers.run(image, ["true"], detach=True, network_mode="none")
        container.reload()
        started = docker_time(container.attrs["State"]["StartedAt"])
        times.append((started - called).total_seconds())
        container.remove(force=True)
    return times


def line(name: str, values: list[float], base: float) -> None:
    p50 = statistics.median(values)
    print(
        f"    {name:<44} p50 {fmt(p50):>7}  p95 {fmt(percentile(values, 95)):>7}"
        f"  {p50 / base:.2f}x bare service"
    )


LAB_SCRIPT = ROOT / "scripts" / "swarm-lab.sh"
LAB_ID = os.environ.get("BENCH_LAB_ID", "41")


def lab(*args: str, env: dict | None = None) -> str:
    result = subprocess.run(
        ["bash", str(LAB_SCRIPT), *args],
        env={**(env or os.environ), "ONEOFF_LAB_ID": LAB_ID},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode:
        raise SystemExit(f"swarm-lab.sh {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def lab_env() -> dict[str, str]:
    env = {}
    for text in lab("env").splitlines():
        if text.startswith("export "):
            name, _, value = text.removeprefix("export ").partition("=")
            env[name] = value.strip("'\"")
    return env


def spread(counts: dict[str, int]) -> str:
    return ", ".join(f"{node} {count}" for node, count in sorted(counts.items()))


def over_three_nodes(n: int) -> None:
    """n jobs at once over the lab's three nodes, beside n bare services at once."""
    import docker
    from django.conf import settings
    from docker import types

    from config import secrets
    from jobs.launch import create_job
    from jobs.models import Job
    from services.models import Plan

    lab("up")
    try:
        env = lab_env()
        manager = docker.DockerClient(base_url=env["LAB_MANAGER"], timeout=60)
        image_ids = set()
        for name in ("LAB_NODE1", "LAB_NODE2", "LAB_NODE3"):
            client = docker.DockerClient(base_url=env[name], timeout=60)
            image_ids.add(client.images.pull(env["LAB_IMAGE"]).id)
            client.close()
        [image_id] = image_ids
        _, service, _, _ = bench_service(image_id, name="Bench lab")
        plan, _ = Plan.objects.update_or_create(
            id="plan-srv-bench-swarm-256",
            defaults={
                "name": "Bench 256 MB 0.25 CPU",
                "kind": "srv",
                "memory_mb": 256,
                "cpu": "0.25",
                "price_monthly": "1.00",
            },
        )
        route_starts("swarm")
        lab(
            "workers",
            env={
                **os.environ,
                **secrets.environment(settings),
                "ONEOFF_LAB_QUEUES": "jobs",
                "JOB_BACKEND": "swarm",
                "ONEOFF_SUPERVISOR_INTERVAL": "0.2",
                "JOB_USAGE_SAMPLE_SECONDS": "0",
                "CONN_MAX_AGE": "0",
            },
        )
        try:
            started = time.monotonic()
            jobs = [create_job(service, "sleep 1", plan.id) for _ in range(n)]
            deadline = time.monotonic() + 600
            while Job.objects.filter(pk__in=[j.pk for j in jobs], finished_at=None).exists():
                if time.monotonic() > deadline:
                    raise SystemExit("the jobs over the lab did not finish in 600 s")
                time.sleep(0.05)
            ours = time.monotonic() - started
            rows = Job.objects.filter(pk__in=[j.pk for j in jobs])
            failed = rows.exclude(status="succeeded").count()
            ours_spread: dict[str, int] = {}
            for host in rows.values_list("host", flat=True):
                ours_spread[host] = ours_spread.get(host, 0) + 1
        finally:
            lab("workers-down")
        nodes = {node.id: node.attrs["Description"]["Hostname"] for node in manager.nodes.list()}
        resources = types.Resources(
            cpu_limit=250_000_000,
            mem_limit=256 << 20,
            cpu_reservation=250_000_000,
            mem_reservation=256 << 20,
        )
        template = types.TaskTemplate(
            types.ContainerSpec(image=env["LAB_IMAGE"], command=["sleep", "1"]),
            resources=resources,
            restart_policy=types.RestartPolicy(condition="none"),
        )
        names = [f"bench-lab-{uuid.uuid4().hex[:8]}" for _ in range(n)]
        started = time.monotonic()
        for name in names:
            manager.api.create_service(
                template, name=name, mode=types.ServiceMode("replicated-job")
            )
        bare_spread: dict[str, int] = {}
        remaining = set(names)
        while remaining:
            if time.monotonic() - started > 600:
                raise SystemExit("the bare services did not complete in 600 s")
            for name in list(remaining):
                for task in manager.api.tasks(filters={"service": name}):
                    if (task.get("Status") or {}).get("State") == "complete":
                        node = nodes.get(task.get("NodeID", ""), "?")
                        bare_spread[node] = bare_spread.get(node, 0) + 1
                        remaining.discard(name)
            time.sleep(0.05)
        bare = time.monotonic() - started
        for name in names:
            manager.api.remove_service(name)
        manager.close()
        print(f"{n} jobs of `sleep 1` (256 MB / 0.25 CPU) at once over the three-node lab")
        print(f"    load average: {os.getloadavg()[0]:.2f}")
        print(f"    JOB_BACKEND=swarm: {ours:.1f} s, {failed} not succeeded")
        print(f"      by node: {spread(ours_spread)}")
        print(f"    bare replicated-job services: {bare:.1f} s; by node: {spread(bare_spread)}")
        print(f"    ratio: {ours / bare:.2f}x")
    finally:
        lab("down")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only", choices=("engine", "lab"), help="one part: the single engine or the lab"
    )
    args = parser.parse_args()
    n = 3 if args.quick else 20

    def run() -> None:
        import django

        os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
        os.environ["ONEOFF_INSTANCE"] = f"bench-{uuid.uuid4().hex[:8]}"
        os.environ["ONEOFF_VAR_DIR"] = tempfile.mkdtemp(prefix="oneoff-bench-swarm-")
        os.environ["LOG_LEVEL"] = "WARNING"
        django.setup()
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
        from tests.swarm import engine

        def fail(why: str):
            raise SystemExit(why)

        if args.only in (None, "engine"):
            swarm, dockerd = engine.start(fail)
            try:
                _, service, _, _ = bench_service(swarm.image_id)
                common = {
                    "DOCKER_HOST": swarm.docker_host,
                    "RUNNER_HOST": "bench-node-1",
                    "ONEOFF_SUPERVISOR_INTERVAL": "0.2",
                    "JOB_USAGE_SAMPLE_SECONDS": "0",
                }
                measured = {}
                for backend in ("docker", "swarm"):
                    route_starts("swarm" if backend == "swarm" else None)
                    worker = start_worker(
                        os.environ["ONEOFF_VAR_DIR"], {**common, "JOB_BACKEND": backend}
                    )
                    try:
                        run_jobs(service, 1)  # warm up
                        measured[backend] = run_jobs(service, n)
                    finally:
                        stop_worker(worker)
                bare = bare_services(swarm.client, swarm.image_id, n)
                runs = bare_runs(swarm.client, swarm.image_id, n)
                base = statistics.median(bare)
                print(f"create -> running over {n} jobs of `true`, one at a time, on one engine")
                print(f"    load average: {os.getloadavg()[0]:.2f}")
                line("bare `docker service create` replicated-job", bare, base)
                line("bare `docker run -d` (for scale)", runs, base)
                line("JOB_BACKEND=docker (create -> startedAt)", measured["docker"], base)
                line("JOB_BACKEND=swarm (create -> startedAt)", measured["swarm"], base)
                ratio = statistics.median(measured["swarm"]) / statistics.median(measured["docker"])
                print(f"    swarm / docker backend p50: {ratio:.2f}x")
            finally:
                swarm.client.close()
                engine.stop(dockerd)
        if args.only in (None, "lab"):
            over_three_nodes(6 if args.quick else 100)

    with_own_database(os.environ.get("BENCH_SWARM_DB", "oneoff_bench_swarm"), run)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CLI benchmark: `oneoff jobs run --wait -- true` wall time beside the API's own create ->
finished time (the client's share: process start, the create request, the polls, exit).
Target: the client adds < 100 ms (median).

The API's time is measured two ways in the same run, alternating with the client's runs: the
job's own `finishedAt - createdAt` (when the container exited, which the API can only report
once the supervisor has recorded it, up to its 0.5 s pass later), and the wall time of a bare
API client in this process (a kept-alive connection: POST, then GET every 10 ms until the job is
finished): the floor for any client, so "client adds" is the CLI's wall time less that one.

It makes its own database (oneoff_bench_cli), runs gunicorn (as deployed, rate limits raised)
and a Celery worker of its own, labels its containers with an instance of its own, and runs
`.venv/bin/oneoff` as a subprocess from a temporary folder. `--quick`: 5 runs instead of 30.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import bench_runner  # noqa: E402 - the runner benchmark's worker and image helpers
from common import percentile  # noqa: E402

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
ONEOFF = str(Path(sys.executable).with_name("oneoff"))
TARGET_MS = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_env() -> dict:
    pg = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
    env = {
        "DATABASE_URL": f"{pg}/oneoff_bench_cli",
        "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"),
        "CACHE_URL": "",
        "ONEOFF_INSTANCE": f"bench-cli-{os.getpid()}",
        "ONEOFF_VAR_DIR": tempfile.mkdtemp(prefix="oneoff-bench-cli-"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
        **{
            f"API_RATE_LIMIT{scope}_{kind}": "100000/m"
            for scope in ("", "_USER", "_WORKSPACE")
            for kind in ("READ", "WRITE", "JOB_CREATE")
        },
    }
    os.environ.update(env)
    for sql in ("DROP DATABASE IF EXISTS oneoff_bench_cli", "CREATE DATABASE oneoff_bench_cli"):
        subprocess.run(["psql", f"{pg}/postgres", "-q", "-c", sql], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    return env


def start_web(port: int, var_dir: str) -> subprocess.Popen:
    from django.conf import settings

    from config import secrets

    log = open(Path(var_dir) / "web.log", "ab")  # noqa: SIM115 - the child writes to it
    web = subprocess.Popen(
        [GUNICORN, "config.wsgi", "--config", "config/gunicorn.py", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={**os.environ, **secrets.environment(settings), "DEBUG": "false"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return web
        except OSError:
            time.sleep(0.1)
    web.kill()
    raise SystemExit("gunicorn did not start:\n" + (Path(var_dir) / "web.log").read_text())


class BareClient:
    """The API without the CLI: one kept-alive connection, POST, then GET every 10 ms."""

    def __init__(self, port: int, key: str, service_id: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.service_id = service_id

    def call(self, method: str, path: str, body: bytes | None = None) -> dict:
        self.conn.request(method, path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        data = json.loads(response.read())
        assert response.status in (200, 201), data
        return data

    def run(self) -> dict:
        path = f"/v1/services/{self.service_id}/jobs"
        job = self.call("POST", path, json.dumps({"startCommand": "true"}).encode())
        while job["status"] not in ("succeeded", "failed", "canceled"):
            time.sleep(0.01)
            job = self.call("GET", f"{path}/{job['id']}")
        assert job["status"] == "succeeded", job
        return job


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 5 if args.quick else 30
    if not shutil.which("docker"):
        print("docker CLI missing")
        return 1
    env = setup_env()
    image = bench_runner.ensure_image()
    import django

    django.setup()
    from common import bench_service

    from config.celery import app
    from services.models import ApiKey

    app.control.purge()
    workspace, service, _, user = bench_service(image, admin_email="bench@example.com")
    _, key = ApiKey.issue(user, workspace)
    port = free_port()
    worker = bench_runner.start_worker(env["ONEOFF_VAR_DIR"])
    web = start_web(port, env["ONEOFF_VAR_DIR"])
    home = tempfile.mkdtemp(prefix="oneoff-bench-cli-home-")
    cli_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ONEOFF_", "API_RATE"))},
        "ONEOFF_API_URL": f"http://127.0.0.1:{port}",
        "ONEOFF_API_KEY": key,
        "XDG_CONFIG_HOME": home,
    }
    command = [ONEOFF, "jobs", "run", service.id, "--wait", "--json", "-q", "--", "true"]
    walls, apis, bares, bare_apis, starts = [], [], [], [], []
    bare = BareClient(port, key, service.id)
    try:
        for _ in range(2):  # warm up: the image's first container, the web's first requests
            subprocess.run(command, cwd=home, env=cli_env, capture_output=True, check=True)
        if os.environ.get("BENCH_CLI_DEBUG"):
            verbose = [ONEOFF, "-v", *command[1:]]
            began = time.monotonic()
            result = subprocess.run(verbose, cwd=home, env=cli_env, capture_output=True)
            print(f"{time.monotonic() - began:.3f}", result.stderr.decode(), result.stdout.decode())
        for _ in range(runs):
            began = time.monotonic()
            subprocess.run([ONEOFF, "--version"], cwd=home, env=cli_env, capture_output=True)
            starts.append(time.monotonic() - began)
        for _ in range(runs):
            began = time.monotonic()
            result = subprocess.run(command, cwd=home, env=cli_env, capture_output=True)
            wall = time.monotonic() - began
            if result.returncode != 0:
                raise SystemExit(f"oneoff exited {result.returncode}: {result.stderr.decode()}")
            job = json.loads(result.stdout)
            walls.append(wall)
            apis.append((stamp(job["finishedAt"]) - stamp(job["createdAt"])).total_seconds())
            began = time.monotonic()
            job = bare.run()
            bares.append(time.monotonic() - began)
            bare_apis.append((stamp(job["finishedAt"]) - stamp(job["createdAt"])).total_seconds())
    finally:
        web.terminate()
        web.wait(15)
        bench_runner.stop_worker(worker, env["ONEOFF_INSTANCE"])
        shutil.rmtree(home, ignore_errors=True)
    added = statistics.median(walls) - statistics.median(bares)
    behind = [w - a for w, a in zip(walls, apis, strict=True)]

    def ms(values, p=None):
        value = statistics.median(values) if p is None else percentile(values, p)
        return f"{value * 1000:.0f} ms"

    print(f"runs: {runs} x `oneoff jobs run --wait -- true` (service by id)")
    print(f"oneoff wall time:                  median {ms(walls)}, p95 {ms(walls, 95)}")
    print(f"  its jobs' finishedAt - createdAt: median {ms(apis)}, p95 {ms(apis, 95)}")
    print(f"  wall - (finishedAt - createdAt):  median {ms(behind)}, p95 {ms(behind, 95)}")
    print(f"bare API client wall time:         median {ms(bares)}, p95 {ms(bares, 95)}")
    print(f"  its jobs' finishedAt - createdAt: median {ms(bare_apis)}, p95 {ms(bare_apis, 95)}")
    print(f"process start alone (`oneoff --version`): median {ms(starts)}")
    print(f"client adds (median oneoff - median bare client): {added * 1000:.0f} ms")
    print(f"ratio oneoff / bare client: {statistics.median(walls) / statistics.median(bares):.2f}x")
    met = added * 1000 < TARGET_MS
    print(f"target: client adds < {TARGET_MS} ms: {'met' if met else 'MISSED'}")
    if not met and not args.quick:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

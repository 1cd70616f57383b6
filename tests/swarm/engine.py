"""A Docker Engine of the test session's own, in a network namespace of its own, that is a
single-node swarm manager (JOB_BACKEND=swarm's tests). Never the machine's main engine: every
other test uses that one, and ``swarm init`` would change it for them.

The namespace has only loopback, plus an address of its own on it for ``swarm init
--advertise-addr`` (Swarm refuses 127.0.0.1): nothing leaves the namespace. The engine runs
with the no-bridge flags of MACHINE.md and its own socket, data root, exec root and pid file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tests.helpers import missing_part

# Known when a test module is imported (its WORKER_ENV names the socket); unique per session.
ROOT = Path(f"/tmp/oneoff-swarm-{os.getpid()}")
SOCKET = ROOT / "docker.sock"
DOCKER_HOST = f"unix://{SOCKET}"
NAMESPACE = f"oneoff-swarm-{os.getpid()}"
ADDRESS = "10.231.0.1"  # inside the namespace only
MAKE_IMAGE = Path(__file__).resolve().parents[2] / "scripts" / "make-busybox-image.sh"


@dataclass
class SwarmEngine:
    docker_host: str
    image_id: str
    client: object
    log: Path


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def start(fail: Callable[[str], NoReturn] = missing_part) -> tuple[SwarmEngine, subprocess.Popen]:
    """Start the engine and init its swarm; ``fail(why)`` when a part is missing (a test fails
    under ONEOFF_REQUIRE_PARTS=1, bench/bench_swarm.py exits)."""
    for tool in ("dockerd", "ip", "nsenter", "busybox"):
        if shutil.which(tool) is None and not (tool == "busybox" and Path("/bin/busybox").exists()):
            fail(f"a swarm test engine needs {tool}")
    if os.geteuid() != 0:
        fail("a swarm test engine needs root (network namespace, dockerd)")
    import docker

    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    try:
        _run("ip", "netns", "add", NAMESPACE)
        _run("ip", "-n", NAMESPACE, "link", "set", "lo", "up")
        _run("ip", "-n", NAMESPACE, "addr", "add", f"{ADDRESS}/32", "dev", "lo")
    except (subprocess.SubprocessError, OSError) as exc:
        stop(None)
        fail(f"could not make the swarm engine's network namespace: {exc}")
    log = ROOT / "dockerd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{NAMESPACE}",
                "dockerd",
                f"--host={DOCKER_HOST}",
                f"--data-root={ROOT / 'data'}",
                f"--exec-root={ROOT / 'exec'}",
                f"--pidfile={ROOT / 'docker.pid'}",
                "--bridge=none",
                "--iptables=false",
                "--ip-forward=false",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            client = docker.DockerClient(base_url=DOCKER_HOST, timeout=30)
            client.ping()
            break
        except Exception as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                stop(process)
                fail(f"the swarm test engine did not start ({exc}):\n{tail}")
            time.sleep(0.1)
    try:
        client.swarm.init(advertise_addr=ADDRESS, listen_addr=f"{ADDRESS}:2377")
        env = {**os.environ, "DOCKER_HOST": DOCKER_HOST, "ROOTFS": str(ROOT / "busybox-root")}
        tag = "oneoff-test/busybox:latest"
        subprocess.run([str(MAKE_IMAGE), tag], check=True, env=env, capture_output=True)
        image_id = client.images.get(tag).id
    except Exception as exc:
        stop(process)
        fail(f"the swarm test engine could not init a swarm or make its image: {exc}")
    return SwarmEngine(DOCKER_HOST, image_id, client, log), process


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    subprocess.run(["ip", "netns", "del", NAMESPACE], capture_output=True, timeout=30)
    shutil.rmtree(ROOT, ignore_errors=True)

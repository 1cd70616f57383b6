"""The three-node swarm lab (``scripts/swarm-lab.sh``) for tests that ask for it.

``swarm_lab`` brings the lab up once per test session (about 6 s) and takes it down at the end;
a lab that was already up and healthy when the session started (someone ran ``up`` by hand) is
used as it is and left up. It yields a ``SwarmLab``: ``.manager`` / ``.nodes[n]`` are the
engines' ``unix://`` URLs (``.client(n)`` a Docker SDK client), ``.registry`` the registry's
``host:port`` on node 1, ``.image`` the busybox image there by digest, ``.host_addr`` the
bridge address where PostgreSQL (5432) and Redis (6379) answer, ``.netns[n]`` the node's network
namespace (``.run_in(n, [...])`` runs a command in it), ``.env`` all of them as the script's
``LAB_*`` variables. ``start_workers(**env)`` / ``stop_workers()`` run Oneoff's Celery workers on
every node (``RUNNER_HOST=nodeN``), with this session's database and broker over the bridge.

``ONEOFF_LAB_ID`` (default 19) picks the lab (subnet 198.18.<ID>.0/24): two test sessions at
once on one machine need two ids. The lab needs root, iproute2, dockerd, docker-registry and
socat; a test asking for it fails when it cannot come up (in CI, or with
``ONEOFF_REQUIRE_PARTS=1``), and is skipped elsewhere.
"""

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import missing_part

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "swarm-lab.sh"
LAB_ID = os.environ.get("ONEOFF_LAB_ID", "19")


@dataclass
class SwarmLab:
    env: dict[str, str]
    owned: bool = True
    workers_env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.env["ONEOFF_LAB_ID"]

    @property
    def manager(self) -> str:
        return self.env["LAB_MANAGER"]

    @property
    def nodes(self) -> dict[int, str]:
        return {n: self.env[f"LAB_NODE{n}"] for n in (1, 2, 3)}

    @property
    def netns(self) -> dict[int, str]:
        return dict(enumerate(self.env["LAB_NETNS"].split(), start=1))

    @property
    def registry(self) -> str:
        return self.env["LAB_REGISTRY"]

    @property
    def image(self) -> str:
        return self.env["LAB_IMAGE"]

    @property
    def host_addr(self) -> str:
        return self.env["LAB_HOST_ADDR"]

    @property
    def subnet(self) -> str:
        return self.env["LAB_SUBNET"]

    def client(self, node: int = 1, timeout: int = 30):
        import docker

        return docker.DockerClient(base_url=self.nodes[node], timeout=timeout)

    def run_in(self, node: int, command: list[str], timeout: float = 30, **kwargs):
        """Run ``command`` in node ``node``'s network namespace."""
        return subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns[node]}", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    def start_workers(self, **env: str) -> None:
        """Oneoff's jobs and builds workers on every node, with ``env`` over this process's
        environment (DATABASE_URL, CELERY_BROKER_URL and CACHE_URL are moved to the bridge)."""
        self.workers_env = {**os.environ, **env, "ONEOFF_LAB_ID": self.id}
        result = _script("workers", env=self.workers_env, timeout=120)
        if result.returncode != 0:
            pytest.fail(f"the lab's workers did not start:\n{result.stdout}{result.stderr}")

    def stop_workers(self) -> None:
        _script("workers-down", timeout=120)

    def heal(self) -> None:
        """Bring a lab a test broke (a node killed) back to health: ``up`` rebuilds a half-made
        lab. Tests that break it call this when they end, so that the tests after them, which
        pytest-django may order after them, find three ready nodes."""
        result = _script("up")
        if result.returncode != 0:
            pytest.fail(f"the lab did not come back up:\n{result.stderr[-3000:]}")
        self.env = _parse(result.stdout)

    def worker_log(self, node: int, queue: str = "jobs") -> str:
        path = Path(f"/run/oneoff-lab-{self.id}/node{node}/worker-{queue}.log")
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""


def _script(*args: str, env: dict | None = None, timeout: float = 180):
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**(env or os.environ), "ONEOFF_LAB_ID": LAB_ID},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _parse(lines: str) -> dict[str, str]:
    env = {}
    for line in lines.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = " ".join(shlex.split(value))
    return env


@pytest.fixture(scope="session")
def swarm_lab():
    """The three-node swarm lab, up for the session (see the module docstring)."""
    if os.geteuid() != 0:
        missing_part("the swarm lab needs root (network namespaces, dockerd)")
    already = _script("status", timeout=60).returncode == 0
    if already:
        lab = SwarmLab(_parse(_script("env").stdout), owned=False)
    else:
        result = _script("up")
        if result.returncode != 0:
            _script("down")
            missing_part(f"the swarm lab did not come up:\n{result.stderr[-3000:]}")
        lab = SwarmLab(_parse(result.stdout))
    yield lab
    if lab.workers_env:
        lab.stop_workers()
    if lab.owned:
        _script("down")

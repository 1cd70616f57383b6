"""The swarm lab itself (scripts/swarm-lab.sh, tests/plugins/swarm_lab.py): three Ready nodes, a
``replicated-job`` with a memory reservation placed on a worker from the lab registry's image,
and namespaces that reach the lab subnet and nothing else."""

import socket
import subprocess

import pytest

from tests.helpers import wait_for


def test_three_nodes_ready_one_manager(swarm_lab):
    nodes = swarm_lab.client(1).nodes.list()
    states = sorted(
        (n.attrs["Description"]["Hostname"], n.attrs["Status"]["State"], n.attrs["Spec"]["Role"])
        for n in nodes
    )
    assert states == [
        ("node1", "ready", "manager"),
        ("node2", "ready", "worker"),
        ("node3", "ready", "worker"),
    ]
    addresses = sorted(n.attrs["Status"]["Addr"] for n in nodes)
    net = swarm_lab.host_addr.rsplit(".", 1)[0]
    assert addresses == [f"{net}.11", f"{net}.12", f"{net}.13"]


def test_a_replicated_job_runs_on_a_worker_from_the_registry_and_reports_its_exit(swarm_lab):
    import docker.types

    client = swarm_lab.client(1)
    assert "@sha256:" in swarm_lab.image
    assert swarm_lab.image.startswith(swarm_lab.registry)
    service = client.services.create(
        swarm_lab.image,
        command=["sh", "-c", "echo from $(hostname); exit 3"],
        name="lab-sanity",
        mode=docker.types.ServiceMode("replicated-job"),
        restart_policy=docker.types.RestartPolicy(condition="none"),
        resources=docker.types.Resources(
            mem_reservation=32 * 1024 * 1024, mem_limit=32 * 1024 * 1024
        ),
        constraints=["node.role==worker"],
    )
    try:

        def ended():
            tasks = service.tasks()
            done = [t for t in tasks if t["Status"]["State"] in ("failed", "complete")]
            return done[0] if done else None

        task = wait_for(ended, 60, 0.2, "the lab's job to end")
        assert task["Status"]["ContainerStatus"]["ExitCode"] == 3
        assert "non-zero exit (3)" in task["Status"]["Err"]
        node = client.nodes.get(task["NodeID"])
        assert node.attrs["Spec"]["Role"] == "worker"
        reservation = task["Spec"]["Resources"]["Reservations"]["MemoryBytes"]
        assert reservation == 32 * 1024 * 1024
        # That node pulled the image from the registry: it never had it.
        hostname = node.attrs["Description"]["Hostname"]
        engine = swarm_lab.client(int(hostname.removeprefix("node")))
        digests = [d for i in engine.images.list() for d in i.attrs.get("RepoDigests") or []]
        assert swarm_lab.image in digests
    finally:
        service.remove()


def test_a_namespace_reaches_the_lab_subnet_and_nothing_else(swarm_lab):
    # PostgreSQL and Redis answer on the bridge address.
    redis = swarm_lab.run_in(
        2,
        [
            "bash",
            "-c",
            f"exec 3<>/dev/tcp/{swarm_lab.host_addr}/6379; printf 'PING\\r\\n' >&3; head -c 7 <&3",
        ],
    )
    assert redis.stdout.strip() == "+PONG", redis.stderr
    postgres = swarm_lab.run_in(
        3, ["bash", "-c", f"exec 3<>/dev/tcp/{swarm_lab.host_addr}/5432 && echo open"]
    )
    assert postgres.stdout.strip() == "open", postgres.stderr
    # Anything off the subnet has no route: the machine's own address, its gateway, the world.
    own = subprocess.run(
        ["ip", "-4", "-o", "route", "get", "1.1.1.1"], capture_output=True, text=True
    ).stdout.split()
    off_subnet = ["1.1.1.1", "10.0.0.1", "192.168.1.1"]
    if "src" in own:
        off_subnet.append(own[own.index("src") + 1])
    if "via" in own:
        off_subnet.append(own[own.index("via") + 1])
    for node in (1, 2, 3):
        routes = swarm_lab.run_in(node, ["ip", "-4", "route"]).stdout
        assert "default" not in routes
        for address in off_subnet:
            probe = swarm_lab.run_in(node, ["ip", "route", "get", address])
            assert probe.returncode != 0, (node, address)
            assert "unreachable" in probe.stderr, (node, address)


def test_postgres_and_redis_are_opened_to_the_bridge_address_only(swarm_lab):
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    for port in (5432, 6379):
        local = {
            line.split()[3]
            for line in listening.splitlines()
            if line.split()[3].endswith(f":{port}")
        }
        assert local <= {f"127.0.0.1:{port}", f"[::1]:{port}", f"{swarm_lab.host_addr}:{port}"}, (
            local
        )
    # The bridge address is the root namespace's own: a connection from here works too.
    with socket.create_connection((swarm_lab.host_addr, 6379), timeout=5):
        pass


@pytest.mark.parametrize("node", [1, 2, 3])
def test_every_node_has_its_own_engine(swarm_lab, node):
    info = swarm_lab.client(node).info()
    assert info["Name"] == f"node{node}"
    assert info["Swarm"]["LocalNodeState"] == "active"
    assert f"/oneoff-lab-{swarm_lab.id}/node{node}" in info["DockerRootDir"]

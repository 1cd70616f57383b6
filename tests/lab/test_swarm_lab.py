"""The swarm lab itself (scripts/swarm-lab.sh, tests/plugins/swarm_lab.py): three Ready nodes, a
``replicated-job`` with a memory reservation placed on a worker from the lab registry's image,
and namespaces that reach the lab subnet and nothing else."""

import re
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
        # PostgreSQL and Redis themselves on loopback; this lab's relays on its bridge address,
        # bound to the bridge (``%olab<ID>``); nothing on a wildcard or any address but a lab
        # bridge's (another lab may run beside this one).
        assert f"{swarm_lab.host_addr}%olab{swarm_lab.id}:{port}" in local
        for address in local - {f"127.0.0.1:{port}", f"[::1]:{port}"}:
            assert re.fullmatch(rf"198\.18\.\d+\.1(%olab\d+)?:{port}", address), address
    # The relays take connections that arrive over the lab bridge only. Linux accepts a packet
    # for any of its addresses on any interface (eth0 too): a probe namespace outside the lab,
    # joined by a veth of its own and routing the bridge address through it, is refused.
    probe, outside, inside = f"olab-probe-{swarm_lab.id}", f"olabp{swarm_lab.id}", "eth0"
    ip = ["ip", "netns", "exec", probe, "ip"]
    try:
        for command in (
            ["ip", "netns", "add", probe],
            ["ip", "link", "add", outside, "type", "veth", "peer", "name", f"{outside}x"],
            ["ip", "link", "set", f"{outside}x", "netns", probe],
            [*ip, "link", "set", f"{outside}x", "name", inside],
            ["ip", "addr", "add", "198.18.254.1/30", "dev", outside],
            ["ip", "link", "set", outside, "up"],
            [*ip, "addr", "add", "198.18.254.2/30", "dev", inside],
            [*ip, "link", "set", inside, "up"],
            [*ip, "route", "add", f"{swarm_lab.host_addr}/32", "via", "198.18.254.1"],
        ):
            subprocess.run(command, check=True, capture_output=True)
        for port in (5432, 6379):
            tried = connect(probe, swarm_lab.host_addr, port)
            assert tried.stdout.strip() != "open", port
            assert "refused" in tried.stderr, tried.stderr
        # The probe does reach the machine at that address: a port the root namespace
        # listens on for every interface would answer (a listener made here, on the bridge
        # address without a device).
        with socket.create_server((swarm_lab.host_addr, 0)) as server:
            port = server.getsockname()[1]
            tried = connect(probe, swarm_lab.host_addr, port)
            assert tried.stdout.strip() == "open", tried.stderr
    finally:
        subprocess.run(["ip", "link", "delete", outside], capture_output=True)
        subprocess.run(["ip", "netns", "delete", probe], capture_output=True)


@pytest.mark.parametrize("node", [1, 2, 3])
def test_every_node_has_its_own_engine(swarm_lab, node):
    info = swarm_lab.client(node).info()
    assert info["Name"] == f"node{node}"
    assert info["Swarm"]["LocalNodeState"] == "active"
    assert f"/oneoff-lab-{swarm_lab.id}/node{node}" in info["DockerRootDir"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_per_node_reaches_postgres_redis_and_its_own_engine(swarm_lab):
    from django.conf import settings
    from django.db import connection

    from jobs.models import RunnerHost

    db = connection.settings_dict
    user, port = db["USER"] or "postgres", db["PORT"] or 5432
    swarm_lab.start_workers(
        DATABASE_URL=f"postgres://{user}@127.0.0.1:{port}/{db['NAME']}",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        ONEOFF_LAB_QUEUES="jobs",  # the supervisor heart-beats; no builds worker needed
    )
    try:
        # Each node's supervisor heart-beats its host, with whether its engine answers: over the
        # bridge to PostgreSQL, and to the node's own socket.
        hosts = wait_for(
            lambda: (
                rows
                if len(rows := list(RunnerHost.objects.filter(name__startswith="node"))) == 3
                else None
            ),
            60,
            0.2,
            "the three nodes' workers to heart-beat",
        )
        assert sorted((h.name, h.docker_ok) for h in hosts) == [
            ("node1", True),
            ("node2", True),
            ("node3", True),
        ]
        for node in (1, 2, 3):
            assert f"@{swarm_lab.host_addr}:" in swarm_lab.worker_log(node)
    finally:
        swarm_lab.stop_workers()


def test_up_after_a_half_made_lab_and_down_twice(swarm_lab):
    """A second lab (the next id, beside the session's): ``up`` over leftovers of a failed one
    (a bridge, a namespace, a folder, an engine killed) makes a healthy lab; ``down`` removes
    every trace, and may run again."""
    import os
    from pathlib import Path

    from tests.plugins.swarm_lab import SCRIPT

    lab_id = str(int(swarm_lab.id) + 1)
    env = {**os.environ, "ONEOFF_LAB_ID": lab_id}

    def script(*args):
        return subprocess.run(
            ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=180
        )

    try:
        script("down")
        subprocess.run(["ip", "link", "add", f"olab{lab_id}", "type", "bridge"], check=True)
        subprocess.run(["ip", "netns", "add", f"olab{lab_id}-n2"], check=True)
        Path(f"/run/oneoff-lab-{lab_id}/node1").mkdir(parents=True)
        made = script("up")
        assert made.returncode == 0, made.stderr
        assert "removing a previous (incomplete) lab" in made.stderr
        assert script("status").returncode == 0
        # An engine dies: the lab is no longer healthy, and up makes it again.
        pid = Path(f"/run/oneoff-lab-{lab_id}/node3/dockerd.pid.outer").read_text().strip()
        subprocess.run(["kill", "-KILL", pid], check=True)
        wait_for(lambda: script("status").returncode != 0, 10, 0.2, "the lab to be unhealthy")
        again = script("up")
        assert again.returncode == 0, again.stderr
        assert script("status").returncode == 0
    finally:
        assert script("down").returncode == 0
    assert script("down").returncode == 0
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"olab{lab_id}" not in namespaces
    assert f"olab{lab_id}" not in links
    assert not Path(f"/run/oneoff-lab-{lab_id}").exists()
    assert not Path(f"/var/lib/oneoff-lab-{lab_id}").exists()
    with open("/proc/mounts") as mounts:
        assert f"oneoff-lab-{lab_id}/" not in mounts.read()


def connect(netns: str, address: str, port: int) -> subprocess.CompletedProcess:
    """A TCP connection from ``netns`` to ``address:port`` (stdout "open" when it was taken)."""
    return subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns,
            "bash",
            "-c",
            f"exec 3<>/dev/tcp/{address}/{port} && echo open",
        ],
        capture_output=True,
        text=True,
        timeout=15,
    )

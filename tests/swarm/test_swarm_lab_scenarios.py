"""JOB_BACKEND=swarm on the three-node lab (scripts/swarm-lab.sh, the ``swarm_lab`` fixture):
Oneoff's workers on every node (node1 is the manager and starts the jobs), PostgreSQL and Redis
over the lab's bridge. Issue 19's scenarios: jobs adding up to about twice the cluster's memory
all finish without a node's reservations ever above its memory, with their logs complete on
every node; a drained node finishes its jobs and takes no new ones; a node that leaves and joins
again takes work with nothing restarted; a node whose engine and worker are killed ends its jobs
``failed`` with a host-lost reason while the others go on.

The last test kills a worker node and heals the lab when it ends (``SwarmLab.heal``): tests
of the lab may run after it (pytest-django runs tests without the database after the others).
``make test`` runs this module in a pytest session of its own (a fresh database and lab): in the
whole suite's session its jobs did not start in CI, for a reason not found yet (its failures now
print the jobs' notes, the pending jobs left in the database and the nodes' worker logs).
"""

import os
import subprocess
import threading
import time
from collections import defaultdict

import pytest
from django.conf import settings
from django.db import connection, transaction

from jobs.launch import cancel_job, create_job
from jobs.models import Job, JobStatus
from services.models import Build, BuildStatus, Plan
from tests.helpers import TEST_EGRESS_ALLOW, wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ACTIVE = ("assigned", "accepted", "preparing", "ready", "starting", "running")
HOST_TIMEOUT = 30


@pytest.fixture(scope="module")
def lab(swarm_lab, swarm_routes, django_db_setup, runner_instance, tmp_path_factory):
    """The lab with Oneoff's workers on every node (JOB_BACKEND=swarm), and the lab image pulled
    on every node (one image id everywhere: the id a build records)."""
    from config import secrets

    image_ids = set()
    for node in (1, 2, 3):
        client = swarm_lab.client(node)
        image_ids.add(client.images.pull(swarm_lab.image).id)
        client.close()
    assert len(image_ids) == 1
    db = connection.settings_dict
    swarm_lab.start_workers(
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@127.0.0.1:{db['PORT'] or 5432}/"
        f"{db['NAME']}",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CACHE_URL=os.environ.get("CACHE_URL", ""),
        ONEOFF_INSTANCE=runner_instance,
        ONEOFF_VAR_DIR=str(tmp_path_factory.mktemp("lab-workers")),
        ONEOFF_SUPERVISOR_INTERVAL="0.2",
        JOB_BACKEND="swarm",
        JOB_STOP_GRACE="2",
        JOB_USAGE_SAMPLE_SECONDS="0",
        JOB_HOST_TIMEOUT=str(HOST_TIMEOUT),
        CONN_MAX_AGE="0",
        EGRESS_ALLOW=",".join(TEST_EGRESS_ALLOW),
        **secrets.environment(settings),
    )
    swarm_lab.image_id = image_ids.pop()
    global _LAB
    _LAB = swarm_lab
    yield swarm_lab
    swarm_lab.stop_workers()


@pytest.fixture
def lab_service(lab, make_service):
    service = make_service(name="lab")
    Build.objects.create(
        service=service, status=BuildStatus.SUCCEEDED, image_id=lab.image_id, **_times()
    )
    return service


def _times():
    from django.utils import timezone

    now = timezone.now()
    return {"started_at": now, "finished_at": now}


def run(service, command, size: Plan) -> Job:
    with transaction.atomic():
        return create_job(service, command, size.id)


def _waiting_for(ids, predicate, timeout, what):
    """wait_for, failing with where the jobs are and the tail of every node's worker log."""
    try:
        wait_for(predicate, timeout, 0.2, what)
    except pytest.fail.Exception as exc:
        rows = Job.objects.filter(pk__in=ids).values_list("pk", "status", "host", "note")
        others = Job.objects.filter(status=JobStatus.PENDING).exclude(pk__in=ids).count()
        logs = "\n".join(f"--- node{n}\n" + _LAB.worker_log(n)[-1500:] for n in (1, 2, 3) if _LAB)
        raise AssertionError(
            f"{exc}\njobs: {list(rows)}\nother pending jobs in the database: {others}\n{logs}"
        ) from None


_LAB = None


def finished(jobs, timeout):
    ids = [j.pk for j in jobs]

    def done():
        return Job.objects.filter(pk__in=ids, finished_at__isnull=False).count() == len(ids)

    _waiting_for(ids, done, timeout, f"{len(ids)} jobs to finish")
    return list(Job.objects.filter(pk__in=ids).order_by("created_at"))


def running_on(jobs, timeout=30):
    ids = [j.pk for j in jobs]

    def running():
        return Job.objects.filter(pk__in=ids, status=JobStatus.RUNNING).count() == len(ids)

    _waiting_for(ids, running, timeout, f"{len(ids)} jobs to run")
    return dict(Job.objects.filter(pk__in=ids).values_list("pk", "host"))


class ReservationSampler(threading.Thread):
    """Every 200 ms, each node's reserved memory (the tasks Swarm put on it) against its memory."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.stopped = threading.Event()
        self.peak: dict[str, int] = defaultdict(int)
        self.over: list[tuple[str, int, int]] = []
        self.samples = 0

    def run(self):
        capacity = {
            n["ID"]: n["Description"]["Resources"]["MemoryBytes"] for n in self.client.api.nodes()
        }
        while not self.stopped.wait(0.2):
            reserved: dict[str, int] = defaultdict(int)
            for task in self.client.api.tasks():
                if task.get("Status", {}).get("State") in ACTIVE and task.get("NodeID"):
                    resources = task["Spec"].get("Resources") or {}
                    memory = (resources.get("Reservations") or {}).get("MemoryBytes", 0)
                    reserved[task["NodeID"]] += memory
            self.samples += 1
            for node, memory in reserved.items():
                self.peak[node] = max(self.peak[node], memory)
                if memory > capacity.get(node, 0):
                    self.over.append((node, memory, capacity.get(node, 0)))


def test_jobs_of_twice_the_cluster_memory_all_finish_never_overcommitting_with_complete_logs(
    lab, lab_service, swarm_plan
):
    client = lab.client(1)
    memory = min(n["Description"]["Resources"]["MemoryBytes"] for n in client.api.nodes())
    size = swarm_plan(int(memory / 4.5) // (1 << 20), "0.1")  # four fit on a node: 30 is ~2.2x
    sampler = ReservationSampler(client)
    sampler.start()
    try:
        jobs = [run(lab_service, "seq 1 300; sleep 1", size) for _ in range(30)]
        ended = finished(jobs, 150)
    finally:
        sampler.stopped.set()
        sampler.join(5)
    assert sampler.samples > 10
    assert not sampler.over, sampler.over[:5]
    assert [j.status for j in ended] == [JobStatus.SUCCEEDED] * 30, [
        (j.status, j.reason) for j in ended if j.status != JobStatus.SUCCEEDED
    ]
    assert {j.host for j in ended} == {"node1", "node2", "node3"}
    for job in ended:
        assert job.log_line_count == 300, (job.pk, job.host, job.log_line_count)
        texts = list(job.log_lines.order_by("seq").values_list("text", flat=True))
        assert texts == [str(i) for i in range(1, 301)], (job.pk, job.host)
    # Never more than four at once on a node (its memory), and all were busy at some point.
    assert max(sampler.peak.values()) <= 4 * size.memory_mb * (1 << 20)
    wait_for(lambda: not client.api.services(), 15, 0.2, "every job's service to be removed")


def test_a_job_too_big_for_every_node_waits_with_the_reason_and_others_run_past_it(
    lab, lab_service, swarm_plan
):
    nodes = lab.client(1).nodes.list()
    cpus = max(n.attrs["Description"]["Resources"]["NanoCPUs"] for n in nodes) // 10**9
    huge = swarm_plan(64, str(cpus * 4))  # four times the biggest node's CPUs
    big = run(lab_service, "echo never", huge)

    def noted():
        big.refresh_from_db()
        return "no node is that big" in big.note

    _waiting_for([big.pk], noted, 30, "the capacity note of a job no node can hold")
    assert big.status == JobStatus.PENDING
    assert big.note.startswith(f"waiting for capacity: needs 64 MB / {cpus * 4} CPU — "), big.note
    assert "the largest node has" in big.note, big.note
    # It holds no one up: small jobs created after it run on the three nodes meanwhile.
    small = swarm_plan(64, "0.1")
    after = finished([run(lab_service, "echo ok", small) for _ in range(3)], 60)
    assert all(j.status == JobStatus.SUCCEEDED for j in after), [j.reason for j in after]
    cancel_job(big)
    [big] = finished([big], 30)
    assert big.status == JobStatus.CANCELED
    wait_for(
        lambda: not lab.client(1).api.services(filters={"name": big.container_name}),
        15,
        0.2,
        "the big job's service to be removed",
    )


def test_a_drained_node_finishes_its_jobs_and_takes_no_new_ones(lab, lab_service, swarm_plan):
    client = lab.client(1)
    node3 = next(n for n in client.nodes.list() if n.attrs["Description"]["Hostname"] == "node3")
    small = swarm_plan(64, "0.1")
    first = [run(lab_service, "echo start; sleep 4; echo end", small) for _ in range(6)]
    hosts = running_on(first)
    on_node3 = [job_id for job_id, host in hosts.items() if host == "node3"]
    assert on_node3, hosts  # Swarm spreads six tasks over three empty nodes
    spec = dict(node3.attrs["Spec"], Availability="drain")
    node3.update(spec)
    try:
        later = [run(lab_service, "echo later", small) for _ in range(6)]
        ended = finished(first + later, 60)
    finally:
        node3.reload()
        node3.update(dict(node3.attrs["Spec"], Availability="active"))
    by_id = {j.pk: j for j in ended}
    for job_id in on_node3:
        job = by_id[job_id]
        assert job.status == JobStatus.SUCCEEDED, job.reason
        assert list(job.log_lines.values_list("text", flat=True)) == ["start", "end"]
    assert all(j.status == JobStatus.SUCCEEDED for j in ended)
    assert "node3" not in {by_id[j.pk].host for j in later}


def test_a_node_that_joins_takes_work_without_a_restart(lab, lab_service, swarm_plan):
    """node3 leaves the swarm, then joins it again as a new node: with nothing restarted (its
    engine and its Oneoff worker keep their processes), Swarm places new jobs on it and its
    worker follows them to the end."""
    manager = lab.client(1)
    node3 = lab.client(3)
    pid_file = f"/run/oneoff-lab-{lab.id}/node3/worker-jobs.pid"
    with open(pid_file) as f:
        worker_pid = f.read().strip()
    prefix = lab.host_addr.rsplit(".", 1)[0]
    node3.swarm.leave(force=True)
    try:
        wait_for(
            lambda: (
                {
                    n["Status"]["State"]
                    for n in manager.api.nodes()
                    if n["Description"]["Hostname"] == "node3"
                }
                == {"down"}
            ),
            60,
            0.5,
            "the manager to see node3 gone",
        )
        small = swarm_plan(64, "0.1")
        away = finished([run(lab_service, "echo away", small) for _ in range(3)], 60)
        assert "node3" not in {j.host for j in away}
    finally:
        token = manager.swarm.attrs["JoinTokens"]["Worker"]
        node3.swarm.join(
            remote_addrs=[f"{prefix}.11:2377"],
            join_token=token,
            advertise_addr=f"{prefix}.13",
            listen_addr=f"{prefix}.13:2377",
        )
    for old in manager.api.nodes():
        if old["Description"]["Hostname"] == "node3" and old["Status"]["State"] == "down":
            manager.api.remove_node(old["ID"], force=True)
    wait_for(
        lambda: any(
            n["Description"]["Hostname"] == "node3" and n["Status"]["State"] == "ready"
            for n in manager.api.nodes()
        ),
        60,
        0.5,
        "node3 to be ready again",
    )
    # Swarm spreads new tasks to the node with the fewest: the one that just joined.
    jobs = finished(
        [run(lab_service, "echo back; sleep 2", swarm_plan(64, "0.1")) for _ in range(6)], 90
    )
    on_node3 = [j for j in jobs if j.host == "node3"]
    assert on_node3, [j.host for j in jobs]
    for job in on_node3:
        assert job.status == JobStatus.SUCCEEDED, job.reason
        assert list(job.log_lines.values_list("text", flat=True)) == ["back"]
    with open(pid_file) as f:
        assert f.read().strip() == worker_pid  # the same worker process throughout
    os.kill(int(worker_pid), 0)


def test_a_node_killed_mid_job_ends_its_jobs_host_lost_and_the_others_go_on(
    lab, lab_service, swarm_plan, request
):
    # The lab is healed afterwards: tests that use it may run after this one.
    request.addfinalizer(lab.heal)
    small = swarm_plan(64, "0.1")
    jobs = [run(lab_service, "echo start; sleep 30", small) for _ in range(6)]
    hosts = running_on(jobs)
    # A worker node with some of the jobs (Swarm spreads them; which one depends on the tasks
    # the earlier tests left on each node's count).
    victim = next((n for n in ("node2", "node3") if n in hosts.values()), "")
    assert victim, hosts
    lost = [job_id for job_id, host in hosts.items() if host == victim]
    others = [job_id for job_id, host in hosts.items() if host != victim]
    assert others, hosts
    # The node's engine, containerd and Oneoff's workers: everything in its namespace, SIGKILL.
    pids = subprocess.run(
        ["ip", "netns", "pids", lab.netns[int(victim[-1])]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    subprocess.run(["kill", "-KILL", *pids], check=False)
    killed_at = time.monotonic()

    def all_lost():
        return Job.objects.filter(pk__in=lost, status=JobStatus.FAILED).count() == len(lost)

    wait_for(all_lost, HOST_TIMEOUT + 15, 0.5, f"{victim}'s jobs to end host-lost")
    assert time.monotonic() - killed_at <= HOST_TIMEOUT + 15
    for job in Job.objects.filter(pk__in=lost):
        assert job.reason["evicted"] is True
        # The manager's pass saw the node down (no beat runs here, so not the heartbeat sweep).
        assert job.reason["evictionReason"] == (
            f"runner host {victim} was lost: the swarm manager reports node {victim} down"
        )
    assert Job.objects.filter(pk__in=others, status=JobStatus.RUNNING).count() == len(others)
    for job in Job.objects.filter(pk__in=others):
        cancel_job(job)
    ended = finished(Job.objects.filter(pk__in=others), 30)
    assert all(j.status == JobStatus.CANCELED for j in ended)

"""The manager pass hands queued jobs to Swarm in bulk, oldest first, as far as the nodes'
unreserved room holds them (``ManagerPass._hand_over_queued``), against a fake manager API.

The real engines show the same on the three-node lab (tests/swarm/test_swarm_lab_scenarios.py,
bench/bench_swarm.py); here the arithmetic is checked exactly: which jobs are handed over, in
which order, and which stay queued.
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from jobs.backends.swarm import CAPACITY_NOTE, MANAGER_NOTE, ManagerPass
from jobs.models import Job, JobStatus
from services.models import Plan

pytestmark = pytest.mark.django_db

GB = 1 << 30


class FakeManagerAPI:
    """What ``Cluster`` and ``SwarmBackend._create`` ask a manager: nodes, services, tasks, and
    service creation (recorded, in order)."""

    def __init__(self, nodes: list[tuple[str, float, int]], holding: list[tuple[str, float, int]]):
        self._nodes = [
            {
                "ID": name,
                "Description": {
                    "Hostname": name,
                    "Resources": {"NanoCPUs": int(cpus * 1e9), "MemoryBytes": memory},
                },
                "Status": {"State": "ready"},
                "Spec": {"Availability": "active"},
            }
            for name, cpus, memory in nodes
        ]
        # Tasks of other services holding a reservation on a node.
        self._tasks = [
            {
                "ID": f"foreign-{i}",
                "ServiceID": f"foreign-{i}",
                "NodeID": node,
                "Status": {"State": "running"},
                "Spec": {
                    "Resources": {
                        "Reservations": {"NanoCPUs": int(cpus * 1e9), "MemoryBytes": memory}
                    }
                },
            }
            for i, (node, cpus, memory) in enumerate(holding)
        ]
        self.created: list[str] = []

    def nodes(self):
        return self._nodes

    def services(self, filters=None):
        return []

    def tasks(self, filters=None):
        return [] if filters else self._tasks

    def create_service(self, template, name, labels, mode):
        self.created.append(labels["oneoff.job"])


@pytest.fixture
def queued(make_job, settings):
    settings.JOB_BACKEND = "swarm"
    created = timezone.now() - timedelta(minutes=1)

    def make(plan: Plan, count: int, note: str = "") -> list[Job]:
        jobs = []
        for _ in range(count):
            nonlocal created
            created += timedelta(seconds=1)
            jobs.append(
                make_job(
                    status=JobStatus.PENDING,
                    plan=plan,
                    note=note or f"{CAPACITY_NOTE}: needs … — 1 job created before this one waits",
                    created_at=created,
                    slot_waited_at=timezone.now(),
                )
            )
        return jobs

    return make


def hand_over(api: FakeManagerAPI) -> list[str]:
    from jobs.backends.swarm import Cluster

    client = SimpleNamespace(api=api)
    manager = ManagerPass()
    manager.backend._client = client  # type: ignore[assignment]
    cluster = Cluster(client)  # type: ignore[arg-type]
    manager._hand_over_queued(client, cluster, {})  # type: ignore[arg-type]
    return api.created


def test_every_queued_job_that_fits_goes_in_one_pass_then_the_first_that_does_not(
    queued, swarm_plan
):
    # Two nodes of 2 CPUs: eight jobs of 0.5 CPU fit, the ninth waits inside Swarm (handed
    # over as the head of the queue), the tenth stays queued in the database.
    jobs = queued(swarm_plan(256, "0.5"), 10)
    api = FakeManagerAPI([("node1", 2, 8 * GB), ("node2", 2, 8 * GB)], holding=[])
    assert hand_over(api) == [job.id for job in jobs[:9]]
    claimed = set(
        Job.objects.filter(pk__in=[j.pk for j in jobs], claimed_at__isnull=False).values_list(
            "pk", flat=True
        )
    )
    assert claimed == {job.pk for job in jobs[:9]}


def test_room_held_by_other_services_counts(queued, swarm_plan):
    # 1.5 of node1's 2 CPUs and 1 of node2's are held by services that are not jobs: 0.5 + 1
    # CPU free, so three jobs of 0.5 CPU fit and the fourth is the head.
    jobs = queued(swarm_plan(256, "0.5"), 6)
    api = FakeManagerAPI(
        [("node1", 2, 8 * GB), ("node2", 2, 8 * GB)],
        holding=[("node1", 1.5, GB), ("node2", 1, GB)],
    )
    assert hand_over(api) == [job.id for job in jobs[:4]]


def test_memory_counts_per_node_not_summed(queued, swarm_plan):
    # Each node has 1 GB free; a 1.5 GB job fits neither (though 2 GB are free in all), so it
    # is the head at once and the small job behind it keeps its turn.
    big = queued(swarm_plan(1536, "0.25"), 1)
    small = queued(swarm_plan(256, "0.25"), 1)
    api = FakeManagerAPI(
        [("node1", 2, 2 * GB), ("node2", 2, 2 * GB)],
        holding=[("node1", 0, GB), ("node2", 0, GB)],
    )
    assert hand_over(api) == [big[0].id]
    assert Job.objects.get(pk=small[0].pk).claimed_at is None


def test_a_job_bigger_than_every_node_holds_no_one_up(queued, swarm_plan):
    huge = queued(swarm_plan(256, "8"), 1)  # no node has 8 CPUs
    after = queued(swarm_plan(256, "0.5"), 2)
    api = FakeManagerAPI([("node1", 2, 8 * GB)], holding=[])
    assert hand_over(api) == [huge[0].id, *(job.id for job in after)]


def test_a_job_whose_start_message_a_worker_node_took_is_handed_over(queued, swarm_plan):
    # Without a beat (its sweep re-sends stale starts), nothing else would ever start it.
    stray = queued(
        swarm_plan(256, "0.5"), 1, note=f"{MANAGER_NOTE}: the engine of node3 is not one"
    )
    behind = queued(swarm_plan(256, "0.5"), 1)
    api = FakeManagerAPI([("node1", 2, 8 * GB)], holding=[])
    assert hand_over(api) == [stray[0].id, behind[0].id]

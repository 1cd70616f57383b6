"""JOB_BACKEND=swarm against a real single-node swarm (an engine of the session's own,
tests/swarm/engine.py) and a real Celery worker on it: each job is a replicated-job service
that Swarm places by the plan's CPU and memory; the node's supervisor follows the container.

The node has 2 CPUs: jobs of 1.5 CPU do not fit two at once, and an 8 CPU job fits nowhere.
"""

import itertools
import re
import time

import pytest
from django.db import transaction

from api.schemas.jobs import job_dict
from jobs import reasons
from jobs.launch import cancel_job, create_job
from jobs.models import Job, JobStatus
from services.models import Build
from tests.helpers import wait_finished, wait_for
from tests.swarm import engine

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WORKER_ENV = {
    "DOCKER_HOST": engine.DOCKER_HOST,
    "JOB_BACKEND": "swarm",
    "RUNNER_HOST": "swarm-node-1",
    "JOB_USAGE_SAMPLE_SECONDS": "0",
}


@pytest.fixture(autouse=True)
def _worker(swarm_engine, swarm_routes, live_worker):
    return live_worker


def run(service, command, plan=None, **kwargs) -> Job:
    with transaction.atomic():
        return create_job(service, command, plan.id if plan else None, **kwargs)


def services_of(swarm_engine, job) -> list:
    return swarm_engine.client.api.services(filters={"name": job.container_name})


def wait_status(job, status, timeout=20.0):
    def reached():
        job.refresh_from_db()
        return job.status == status

    wait_for(reached, timeout, message=f"{job.id} to be {status} (is {job.status}: {job.note})")
    return job


def wait_gone(swarm_engine, job, timeout=10.0):
    wait_for(
        lambda: not services_of(swarm_engine, job),
        timeout,
        message=f"the swarm service of {job.id} to be removed",
    )


def lines(job) -> list[str]:
    return list(job.log_lines.order_by("seq").values_list("text", flat=True))


def test_a_job_runs_to_success_on_its_node_with_its_logs_and_its_service_goes(
    swarm_engine, swarm_service, swarm_plan
):
    plan = swarm_plan(64, "0.5")
    job = run(swarm_service, "echo one; echo two; echo three", plan)
    job = wait_finished(job, 30)
    assert job.status == JobStatus.SUCCEEDED, (job.reason, job.note)
    assert job.exit_code == 0
    assert job.host == "swarm-node-1"
    assert lines(job) == ["one", "two", "three"]
    wait_gone(swarm_engine, job)


def test_the_service_carries_the_plan_and_the_hardening(swarm_engine, swarm_service, swarm_plan):
    plan = swarm_plan(96, "0.5")
    job = run(swarm_service, "sleep 30", plan)
    wait_status(job, JobStatus.RUNNING)
    spec = services_of(swarm_engine, job)[0]["Spec"]
    task = spec["TaskTemplate"]
    assert spec["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert task["RestartPolicy"]["Condition"] == "none"
    assert "EndpointSpec" not in spec or not spec["EndpointSpec"].get("Ports")
    assert not task.get("Networks")
    resources = task["Resources"]
    assert (
        resources["Limits"]["MemoryBytes"] == resources["Reservations"]["MemoryBytes"] == 96 << 20
    )
    assert resources["Limits"]["NanoCPUs"] == resources["Reservations"]["NanoCPUs"] == 500_000_000
    assert resources["Limits"]["Pids"] == 512
    container = task["ContainerSpec"]
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["Init"] is True
    assert container["ReadOnly"] is True
    assert all(m["Type"] == "tmpfs" for m in container.get("Mounts", []))
    assert container["Labels"]["oneoff.job"] == job.id
    attrs = swarm_engine.client.api.inspect_container(job.container_id)
    assert attrs["Config"]["Labels"]["oneoff.workspace"] == job.workspace_id
    assert attrs["HostConfig"]["PidsLimit"] == 512
    assert attrs["HostConfig"]["Memory"] == 96 << 20
    assert not attrs["HostConfig"]["Privileged"]
    cancel_job(job)
    wait_finished(job, 20)


def test_a_non_zero_exit_fails_with_its_code(swarm_engine, swarm_service, swarm_plan):
    job = wait_finished(run(swarm_service, "echo bad; exit 3", swarm_plan(64, "0.5")), 30)
    assert job.status == JobStatus.FAILED
    assert job.exit_code == 3
    assert job.reason == {"nonZeroExit": 3}
    assert lines(job) == ["bad"]
    wait_gone(swarm_engine, job)


def test_out_of_memory_is_oom_killed(swarm_engine, swarm_service, swarm_plan):
    command = "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"
    job = wait_finished(run(swarm_service, command, swarm_plan(16, "0.5")), 30)
    assert job.status == JobStatus.FAILED
    assert job.reason == {"oomKilled": {"memoryLimit": "16Mi"}}
    wait_gone(swarm_engine, job)


def test_cancel_while_running(swarm_engine, swarm_service, swarm_plan, owner):
    job = run(swarm_service, "echo started; sleep 60", swarm_plan(64, "0.5"))
    wait_status(job, JobStatus.RUNNING)
    wait_for(lambda: lines(job) == ["started"], 10, message="the first line")
    cancel_job(job, user=owner)
    job = wait_finished(job, 20)
    assert job.status == JobStatus.CANCELED
    assert job.reason == reasons.canceled_by(owner)
    assert job.billed_seconds >= 1
    wait_gone(swarm_engine, job)


def test_max_runtime(swarm_engine, swarm_service, swarm_plan):
    job = wait_finished(
        run(swarm_service, "sleep 60", swarm_plan(64, "0.5"), timeout_seconds=1), 30
    )
    assert job.status == JobStatus.FAILED
    assert job.reason == {"timedOutSeconds": 1}
    wait_gone(swarm_engine, job)


def test_a_job_too_big_for_every_node_waits_with_a_clear_note_and_can_be_canceled(
    swarm_engine, swarm_service, swarm_plan
):
    job = run(swarm_service, "echo never", swarm_plan(2048, "8"))

    def noted():
        job.refresh_from_db()
        return job.note.startswith("waiting for capacity")

    wait_for(noted, 15, message="the capacity note")
    assert job.status == JobStatus.PENDING
    assert job.note.startswith("waiting for capacity: needs 2 GB / 8 CPU — no suitable node")
    assert "insufficient resources on 1 node" in job.note
    assert "no node is that big (the largest node has" in job.note
    job = Job.objects.select_related("plan", "build", "env_snapshot").get(pk=job.pk)
    assert job_dict(job)["pendingReason"] == job.note
    assert reasons.describe(job) == job.note
    assert len(services_of(swarm_engine, job)) == 1
    # It holds nobody up: a job that fits runs meanwhile.
    small = wait_finished(run(swarm_service, "echo small", swarm_plan(64, "0.5")), 30)
    assert small.status == JobStatus.SUCCEEDED
    cancel_job(job)
    job = wait_finished(job, 15)
    assert job.status == JobStatus.CANCELED
    assert job.started_at is None
    assert job.billed_seconds == 0
    wait_gone(swarm_engine, job)


def test_jobs_that_do_not_fit_together_run_one_after_the_other_in_creation_order(
    swarm_engine, swarm_service, swarm_plan
):
    plan = swarm_plan(64, "1.5")  # the node has 2 CPUs: one at a time
    first = run(swarm_service, "echo first; sleep 4", plan)  # the others queue meanwhile
    wait_status(first, JobStatus.RUNNING)
    others = [run(swarm_service, f"echo job{i}; sleep 0.5", plan) for i in range(3)]
    canceled = run(swarm_service, "echo never", plan)

    def all_noted():
        for job in [*others, canceled]:
            job.refresh_from_db()
        return all(
            j.note.startswith("waiting for capacity: needs 64 MB / 1.5 CPU")
            for j in [*others, canceled]
        )

    wait_for(all_noted, 15, message="the capacity notes")
    assert "insufficient resources on 1 node" in others[0].note
    # Three before it, unless the first ended meanwhile (a loaded machine): then two.
    assert re.search(r"[23] jobs created before this one wait", canceled.note), canceled.note
    assert "created before this one wait" in others[1].note, others[1].note
    cancel_job(canceled)  # waiting its turn in the database: canceled at once
    canceled.refresh_from_db()
    assert canceled.status == JobStatus.CANCELED
    ended = [wait_finished(job, 40) for job in [first, *others]]
    assert [job.status for job in ended] == [JobStatus.SUCCEEDED] * 4
    for before, after in itertools.pairwise(ended):
        assert after.started_at >= before.finished_at, [
            (j.id, j.start_command, j.started_at.time(), j.finished_at.time()) for j in ended
        ]
    assert not services_of(swarm_engine, canceled)
    for job in ended:
        wait_gone(swarm_engine, job)


def test_a_start_message_sent_again_makes_no_second_service(
    swarm_engine, swarm_service, swarm_plan
):
    from jobs.backends.swarm import SwarmBackend

    job = run(swarm_service, "sleep 3", swarm_plan(64, "0.5"))
    wait_status(job, JobStatus.RUNNING)
    backend = SwarmBackend(client=swarm_engine.client)
    assert backend.start(job.id) == "skipped"
    assert len(services_of(swarm_engine, job)) == 1
    seen = backend.observe(job)
    assert seen.state == "running"
    assert not seen.lost
    job = wait_finished(job, 20)
    assert job.status == JobStatus.SUCCEEDED
    time.sleep(0.1)
    wait_gone(swarm_engine, job)
    assert backend.observe(job).state == "absent"


def test_a_task_swarm_cannot_start_fails_the_job_with_a_start_error(
    swarm_engine, swarm_service, swarm_plan
):
    Build.objects.filter(service=swarm_service).update(image_id="sha256:" + "0" * 64)
    job = wait_finished(run(swarm_service, "echo never", swarm_plan(64, "0.5")), 30)
    assert job.status == JobStatus.FAILED
    assert job.started_at is None
    assert job.reason["startError"].startswith("Swarm could not run the job's task (rejected)")
    wait_gone(swarm_engine, job)

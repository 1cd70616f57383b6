"""Containers are known by record, not by label (issue 13, point 7).

Any image can carry ``oneoff.instance``/``oneoff.job`` labels (a Dockerfile's ``LABEL``), and so
does every container made from it, a ``docker build`` step's included. The supervisor must never
take such a container for a job: not end the job from its exit, not stop or remove it, not adopt it.
"""

import io
import time
import uuid

import pytest
from django.db import transaction
from django.utils import timezone

from jobs.launch import create_job
from jobs.models import Job, JobStatus
from jobs.runner import CLAIM_STALE
from tests.helpers import wait_finished, wait_for, wait_status

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def forge(docker_client, busybox_image, runner_instance):
    """``forge(job_id, command)``: a container of an image built with forged labels naming this
    test run's installation and ``job_id``, running ``command``."""
    made: list = []

    def make(job_id: str, command: str):
        dockerfile = (
            f"FROM {busybox_image}\nLABEL oneoff.instance={runner_instance} oneoff.job={job_id}\n"
        )
        tag = f"oneoff-test/forged:{uuid.uuid4().hex[:10]}"
        image, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag)
        made.append(("image", image.id))
        assert image.labels["oneoff.job"] == job_id
        container = docker_client.containers.run(
            image.id, ["/bin/sh", "-c", command], detach=True, network_mode="none"
        )
        made.append(("container", container.id))
        return container

    yield make
    for kind, ident in reversed(made):
        try:
            if kind == "container":
                docker_client.api.remove_container(ident, force=True)
            else:
                docker_client.api.remove_image(ident, force=True)
        except Exception:
            pass


def test_a_forged_container_does_not_end_a_running_job(live_worker, job_service, forge):
    # The forged container is made before the victim's own, so the engine lists it after it.
    with transaction.atomic():
        victim = create_job(job_service, "sleep 30")
        forged = forge(victim.id, "sleep 2; exit 7")
    wait_status(victim, JobStatus.RUNNING)

    wait_for(lambda: forged.reload() or forged.status == "exited", 20, 0.1, "the forged exit")
    time.sleep(2)  # ten supervisor passes

    victim.refresh_from_db()
    assert victim.status == JobStatus.RUNNING
    assert victim.exit_code is None
    assert victim.container_id != forged.id
    forged.reload()  # left alone: not removed
    assert forged.status == "exited"


def test_a_forged_container_of_a_finished_job_is_left_alone(live_worker, job_service, forge):
    victim = create_job(job_service, "exit 0")
    wait_finished(victim)
    forged = forge(victim.id, "sleep 30")

    time.sleep(2)  # ten supervisor passes

    forged.reload()
    assert forged.status == "running"
    victim.refresh_from_db()
    assert victim.status == JobStatus.SUCCEEDED


def test_a_forged_container_is_not_adopted_by_a_pending_job(
    live_worker, job_service, make_job, forge
):
    victim = make_job(
        job_service, status=JobStatus.PENDING, command="sleep 30", claimed_at=timezone.now()
    )
    forged = forge(victim.id, "sleep 30")
    wait_for(lambda: forged.reload() or forged.status == "running", 20, 0.1, "the forged start")
    # Its claim goes stale: the supervisor adopts a container whose start was not recorded.
    stale = timezone.now() - CLAIM_STALE
    Job.objects.filter(pk=victim.pk).update(claimed_at=stale)

    time.sleep(2)  # ten supervisor passes

    victim.refresh_from_db()
    assert (victim.status, victim.container_id, victim.claimed_at) == (JobStatus.PENDING, "", stale)
    forged.reload()  # left alone: neither adopted nor removed
    assert forged.status == "running"

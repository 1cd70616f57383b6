"""Jobs run for real: a Celery worker subprocess, the Docker Engine and PostgreSQL."""

import time

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.launch import cancel_job, create_job
from jobs.models import JobStatus, LogStream
from services.models import EnvVar
from tests.helpers import wait_finished, wait_for, wait_status

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def lines_of(job, stream=None):
    rows = job.log_lines.order_by("seq")
    if stream is not None:
        rows = rows.filter(stream=stream)
    return list(rows.values_list("text", flat=True))


def container_of(docker_client, job):
    return docker_client.containers.get(job.container_id)


def test_it_runs_a_job_and_stores_its_logs_in_order(live_worker, job_service, owner):
    job = create_job(
        job_service,
        "echo one; echo two; echo problem >&2; echo three; exit 0",
        user=owner,
    )
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    assert job.exit_code == 0
    assert job.reason == {}
    assert job.started_at <= job.finished_at
    assert job.billed_seconds == 1  # rounded up
    assert job.cost == job.plan.cost_of(1)
    assert lines_of(job, LogStream.STDOUT) == ["one", "two", "three"]
    assert lines_of(job, LogStream.STDERR) == ["problem"]
    seqs = list(job.log_lines.order_by("seq").values_list("seq", flat=True))
    assert seqs == [0, 1, 2, 3]
    stamps = list(job.log_lines.order_by("seq").values_list("timestamp", flat=True))
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 4
    assert job.started_at <= stamps[0] <= job.finished_at
    assert job.log_line_count == 4


def test_it_fails_with_the_exit_code(live_worker, job_service, docker_client):
    job = create_job(job_service, "echo bye; exit 3")
    wait_finished(job)
    assert job.status == JobStatus.FAILED
    assert job.exit_code == 3
    assert job.reason == {"nonZeroExit": 3}
    assert lines_of(job) == ["bye"]
    # Recorded jobs leave no container behind.
    wait_for(
        # The sparse listing (no inspect per container, which races with the removal).
        lambda: not docker_client.api.containers(all=True, filters={"name": job.container_name}),
        message="the container to be removed",
    )


def test_it_fails_oom_on_a_tiny_plan(live_worker, job_service, tiny_plan):
    job = create_job(
        job_service,
        "echo start; x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived",
        tiny_plan.id,
    )
    wait_finished(job)
    assert job.status == JobStatus.FAILED
    assert job.reason == {"oomKilled": {"memoryLimit": "8Mi"}}
    assert "survived" not in lines_of(job)


def test_docker_inspect_shows_the_limits(live_worker, job_service, docker_client, busybox_image):
    EnvVar.objects.create(service=job_service, key="SECRET_TOKEN", value="s3cr3t")
    job = create_job(job_service, "sleep 30")
    wait_status(job, JobStatus.RUNNING)
    attrs = container_of(docker_client, job).attrs
    host = attrs["HostConfig"]
    plan = job.plan
    assert host["Memory"] == plan.memory_mb * 1024 * 1024
    assert host["MemorySwap"] == host["Memory"]  # no swap on top of the memory
    assert host["NanoCpus"] == int(plan.cpu * 1_000_000_000)
    assert host["PidsLimit"] == 512
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False
    assert not host["Binds"]
    assert not host.get("Mounts")
    assert attrs["Mounts"] == []
    assert host["NetworkMode"] == "none"
    # The on-host log is rotated through 4 pieces holding JOB_LOG_MAX_BYTES in all.
    piece = str(settings.JOB_LOG_MAX_BYTES // 4)
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": piece, "max-file": "4"},
    }
    # This engine (overlay2 on extfs) cannot bound the writable layer: the root is read-only,
    # with tmpfs scratch space of half the plan's memory.
    assert host["ReadonlyRootfs"] is True
    assert not host.get("StorageOpt")
    scratch = "rw,exec,nosuid,nodev,size=256m,mode=1777"
    assert host["Tmpfs"] == {"/tmp": scratch, "/var/tmp": scratch}
    assert not attrs["Config"]["User"]  # the image's user
    assert attrs["Image"] == busybox_image
    assert attrs["Name"] == f"/oneoff-{job.id}"
    assert attrs["Config"]["Cmd"] == ["/bin/sh", "-c", "sleep 30"]
    labels = attrs["Config"]["Labels"]
    assert labels["oneoff.job"] == job.id
    assert labels["oneoff.service"] == job_service.id
    assert labels["oneoff.workspace"] == job_service.workspace_id
    image_env = set(docker_client.images.get(busybox_image).attrs["Config"]["Env"] or [])
    assert set(attrs["Config"]["Env"]) - image_env == {"SECRET_TOKEN=s3cr3t"}
    assert not any("docker.sock" in str(m) for m in attrs["Mounts"])
    cancel_job(job)
    wait_finished(job)
    assert job.status == JobStatus.CANCELED


def test_it_uses_the_env_snapshot(live_worker, job_service):
    EnvVar.objects.create(service=job_service, key="GREETING", value="old")
    with transaction.atomic():
        job = create_job(job_service, "sleep 0.5; echo $GREETING")
        EnvVar.objects.filter(service=job_service, key="GREETING").update(value="new")
    EnvVar.objects.create(service=job_service, key="ADDED_LATER", value="x")
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    assert lines_of(job) == ["old"]


def test_it_uses_the_build_snapshot(live_worker, job_service, busybox_build, docker_client):
    with transaction.atomic():
        job = create_job(job_service, "echo ran")
        busybox_build(job_service, image_id="sha256:" + "f" * 64)  # newer; no such image
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    assert lines_of(job) == ["ran"]


def test_cancel_pending_never_starts(live_worker, job_service, owner, docker_client):
    with transaction.atomic():
        job = create_job(job_service, "echo should-not-run")
        cancel_job(job, user=owner)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED
    assert job.reason == {"canceledBy": owner.email}
    time.sleep(1.0)  # the start message is delivered and ignored
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED
    assert job.started_at is None
    assert job.container_id == ""
    assert not docker_client.containers.list(all=True, filters={"name": job.container_name})
    assert lines_of(job) == []


def test_cancel_running_sends_sigterm(live_worker, job_service, owner):
    job = create_job(
        job_service,
        "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    )
    wait_for(lambda: "ready" in lines_of(job), message="the job to print ready")
    asked = timezone.now()
    cancel_job(job, user=owner)
    wait_finished(job)
    assert job.status == JobStatus.CANCELED
    assert job.reason == {"canceledBy": owner.email}
    assert job.canceled_by == owner
    assert "got TERM" in lines_of(job)
    assert (job.finished_at - asked).total_seconds() < 2  # well before the 2 s grace ends
    assert job.billed_seconds >= 1


def test_cancel_kills_a_job_ignoring_sigterm_after_the_grace(live_worker, job_service):
    job = create_job(job_service, "trap '' TERM; echo ready; sleep 60")
    wait_for(lambda: "ready" in lines_of(job), message="the job to print ready")
    asked = timezone.now()
    cancel_job(job)
    wait_finished(job)
    assert job.status == JobStatus.CANCELED
    assert job.reason == {"canceledBy": "api"}
    assert job.exit_code == 137  # SIGKILL
    assert 1.8 <= (job.finished_at - asked).total_seconds() < 8  # JOB_STOP_GRACE=2


def test_a_5_mib_line_without_newline_is_split(live_worker, job_service):
    job = create_job(job_service, "head -c 5242880 /dev/zero | tr '\\0' x")
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    texts = lines_of(job)
    assert sum(len(t) for t in texts) == 5 * 1024 * 1024
    assert max(len(t) for t in texts) <= 16 * 1024
    assert set("".join(texts)) == {"x"}


def test_binary_output_is_cleaned(live_worker, job_service):
    job = create_job(
        job_service, "head -c 200000 /dev/urandom; printf '\\nbefore\\0after\\n\\377\\376ok\\n'"
    )
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    texts = lines_of(job)
    assert not any("\x00" in t for t in texts)
    assert "beforeafter" in texts
    assert "\ufffd\ufffdok" in texts


def test_a_running_job_survives_suspend_and_a_new_build(live_worker, job_service, busybox_build):
    job = create_job(job_service, "echo started; sleep 1.5; echo finished")
    wait_status(job, JobStatus.RUNNING)
    job_service.suspended = True
    job_service.save()
    busybox_build(job_service)
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    assert lines_of(job) == ["started", "finished"]


def test_a_container_removed_behind_our_back_fails_the_job(live_worker, job_service, docker_client):
    job = create_job(job_service, "sleep 30")
    wait_status(job, JobStatus.RUNNING)
    container_of(docker_client, job).remove(force=True)
    wait_finished(job, timeout=20)
    assert job.status == JobStatus.FAILED
    assert job.reason["evicted"] is True
    assert "disappeared" in job.reason["evictionReason"]
    assert job.finished_at is not None


def test_the_same_start_message_twice_starts_one_container(live_worker, job_service, docker_client):
    from jobs.launch import enqueue_start

    with transaction.atomic():
        job = create_job(job_service, "sleep 1; echo once")
        transaction.on_commit(lambda: enqueue_start(job.id))
        transaction.on_commit(lambda: enqueue_start(job.id))
    wait_status(job, JobStatus.RUNNING)
    found = docker_client.containers.list(all=True, filters={"label": f"oneoff.job={job.id}"})
    assert len(found) == 1
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    assert lines_of(job) == ["once"]

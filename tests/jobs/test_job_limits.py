"""What a job may leave on the runner host, against the real engine (overlay2 on extfs here, which
cannot bound a container's writable layer): its on-host log file stays near JOB_LOG_MAX_BYTES
however much it prints, with the stored lines complete up to the cap; it writes nothing to the
host's disk (read-only root, tmpfs scratch of half the plan's memory); and it can run as a
non-root user."""

import contextlib
import os
import time

import pytest

from jobs.launch import cancel_job, create_job
from jobs.models import Job, JobStatus
from services.models import Plan
from tests.helpers import wait_finished, wait_status

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

CAP = 16 * 1024 * 1024  # 4 pieces of 4 MiB, the smallest the runner uses
WORKER_ENV = {"JOB_LOG_MAX_BYTES": str(CAP)}
MiB = 1024 * 1024


def texts(job) -> list[str]:
    return list(job.log_lines.order_by("seq").values_list("text", flat=True))


def log_files(path: str) -> dict[str, int]:
    """Sizes of a container's json-file log and its rotated pieces, by name."""
    sizes = {}
    for name in [path] + [f"{path}.{i}" for i in range(1, 10)]:
        with contextlib.suppress(FileNotFoundError):
            sizes[name] = os.path.getsize(name)
    return sizes


def writable_layer(docker_client, container_id: str) -> int:
    """The container's writable layer on the engine's disk (``docker ps -s``)."""
    [item] = docker_client.api.containers(all=True, size=True, filters={"id": container_id})
    return item.get("SizeRw") or 0


@pytest.fixture
def small_plan(db):
    plan, _ = Plan.objects.update_or_create(
        id="plan-srv-test-64",
        defaults={
            "name": "64 MB (test)",
            "kind": "srv",
            "memory_mb": 64,
            "cpu": "0.5",
            "price_monthly": "1.00",
        },
    )
    return plan


LINES = 5 * CAP // 1001  # of 1,001 bytes: five times the cap
PRINT = (
    'awk \'BEGIN { pad = sprintf("%992s", ""); gsub(/ /, "x", pad);'
    f' for (i = 1; i <= {LINES}; i++) printf "%08d%s\\n", i, pad }}\'; sleep 1'
)


def test_a_job_printing_past_the_cap_keeps_its_host_log_bounded_and_its_lines_complete(
    live_worker, job_service, docker_client
):
    job = create_job(job_service, PRINT)
    wait_status(job, JobStatus.RUNNING)
    path = docker_client.api.inspect_container(job.container_id)["LogPath"]
    largest, pieces_seen = 0, set()
    while not Job.objects.get(pk=job.pk).is_finished:
        sizes = log_files(path)
        largest = max(largest, sum(sizes.values()))
        pieces_seen |= set(sizes)
        time.sleep(0.005)
    wait_finished(job, timeout=60)

    assert job.status == JobStatus.SUCCEEDED, job.reason
    # It printed 84 MB of log (a little more as json-file) while the named pieces on the host
    # never held more than the cap, plus at most a message each.
    assert len(pieces_seen) == 4, pieces_seen  # path, path.1, path.2, path.3: it rotated
    assert largest <= CAP + 4 * 1200, largest
    print(f"on-host log: at most {largest} bytes for {LINES * 1001} bytes printed")
    # Every line up to the cap was stored, in order, then the truncation line; and every byte
    # past it was counted, so none went missing across the rotations.
    lines = texts(job)
    kept = CAP // 1001
    assert len(lines) == kept + 1
    assert [line[:8] for line in lines[:-1]] == [f"{i:08d}" for i in range(1, kept + 1)]
    assert all(len(line) == 1000 for line in lines[:-1])
    assert lines[-1].startswith("[oneoff] log truncated:")
    assert job.log_bytes == kept * 1001
    assert job.log_bytes + job.log_dropped_bytes == LINES * 1001


WRITE = (
    "id -u; dd if=/dev/zero of=/tmp/fill bs=1M count=50; df -k /tmp | tail -n 1;"
    " dd if=/dev/zero of=/fill bs=1M count=50; echo done; sleep 30"
)


def test_a_job_writing_past_its_disk_bound_fails_and_nothing_lands_on_the_host(
    live_worker, job_service, docker_client, small_plan
):
    job = create_job(job_service, WRITE, small_plan.id)
    wait_status(job, JobStatus.RUNNING)

    def output():
        return "\n".join(texts(job))

    deadline = time.monotonic() + 30
    while "done" not in output() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = output()
    assert log.splitlines()[0] == "0"  # the image's user (root) by default
    # The scratch space is a tmpfs of half the plan's memory (32 MiB): full, then ENOSPC.
    assert "dd: error writing '/tmp/fill': No space left on device" in log
    assert " 32768 " in log  # df: 32768 KiB, all used
    # The root filesystem is read-only.
    assert "can't open '/fill': Read-only file system" in log
    # Nothing of the 100 MB it tried to write is on the engine's disk.
    layer = writable_layer(docker_client, job.container_id)
    print(f"writable layer of a job that wrote 100 MB: {layer} bytes")
    assert layer < MiB
    cancel_job(job)
    wait_finished(job)


def test_without_a_disk_bound_the_same_writes_land_on_the_host(
    live_worker, job_service, docker_client, small_plan
):
    """What the bound prevents, measured the same way (JOB_DISK_MODE=off: the old behaviour)."""
    live_worker.restart(JOB_DISK_MODE="off")
    try:
        job = create_job(job_service, WRITE, small_plan.id)
        wait_status(job, JobStatus.RUNNING)
        deadline = time.monotonic() + 30
        while "done" not in texts(job) and time.monotonic() < deadline:
            time.sleep(0.1)
        layer = writable_layer(docker_client, job.container_id)
        print(f"writable layer without the bound: {layer} bytes")
        assert layer >= 100 * MiB
        cancel_job(job)
        wait_finished(job)
    finally:
        live_worker.restart()


def test_jobs_run_as_job_user(live_worker, job_service):
    live_worker.restart(JOB_USER="65534:65534")
    try:
        job = create_job(job_service, "id -u; id -g; echo hi > /tmp/x && cat /tmp/x")
        wait_finished(job)
        assert job.status == JobStatus.SUCCEEDED, texts(job)
        assert texts(job) == ["65534", "65534", "hi"]
    finally:
        live_worker.restart()

"""What a job used, against the real engine and kernel: a job's peak memory and CPU time are read
from its container's cgroup while it runs, kept on the job with a bounded series, and shown on
its page, in the API (job fields and Render's metrics endpoints, read with Render's own client)
with a hint to a bigger plan when it ran out of memory or nearly did.

The jobs allocate with busybox ``dd``: ``bs=300M count=1`` reads 300 MiB into one buffer and
blocks writing it to a pipe nobody reads (``| sleep``), so the memory stays charged to the
container's memory cgroup while it sleeps (a tmpfs write would count too, but is capped at half
the plan; a shell variable costs twice its size)."""

import time

import pytest
from render.public_api import AuthenticatedClient
from render.public_api.api.metrics import get_cpu, get_memory
from render.public_api.models import TimeSeries

from jobs.launch import create_job
from jobs.models import Job, JobStatus, JobUsage
from jobs.runner import new_client
from jobs.usage import MiB, StatsReader, find_cgroup
from services.models import Plan
from tests.helpers import wait_finished, wait_status

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WORKER_ENV = {"JOB_USAGE_SAMPLE_SECONDS": "1"}


def starter(job_service) -> Plan:
    plan = Plan.objects.get(pk="plan-srv-006")
    assert plan.memory_mb == 512
    assert job_service.plan_id == plan.id
    return plan


def test_a_job_holding_300_mb_on_a_512_mb_plan_reports_its_peak_and_gets_no_hint(
    live_worker, job_service, render, client, owner
):
    starter(job_service)
    job = create_job(job_service, "dd if=/dev/zero bs=300M count=1 | sleep 4; echo done")
    wait_finished(job, timeout=40)

    assert job.status == JobStatus.SUCCEEDED, job.reason
    peak_mb = job.peak_memory_bytes / MiB
    print(f"peak {peak_mb:.1f} MB, CPU {job.cpu_seconds:.3f} s")
    assert 290 <= peak_mb <= 330
    assert job.cpu_seconds > 0
    usage = JobUsage.objects.get(job=job)
    assert len(usage.points) >= 3  # read every second for four seconds
    assert max(point[1] for point in usage.points) >= 290 * MiB
    cpu = [point[2] for point in usage.points]
    assert cpu == sorted(cpu)  # CPU seconds so far never go down

    # The API's job fields, and no hint: 300 of 512 MB is well below 90%.
    retrieved = client_get(render, f"/services/{job_service.id}/jobs/{job.id}")
    assert 290 <= retrieved["peakMemoryMB"] <= 330
    assert retrieved["cpuSeconds"] == round(job.cpu_seconds, 2)
    assert "usageHint" not in retrieved
    [listed] = client_get(render, f"/services/{job_service.id}/jobs")
    assert listed["job"]["peakMemoryMB"] == retrieved["peakMemoryMB"]

    # Render's metrics endpoints, parsed by Render's client.
    memory = get_memory.sync(client=render, resource=job.id, resolution_seconds=1)
    assert isinstance(memory, list)
    assert isinstance(memory[0], TimeSeries)
    [series] = memory
    assert [(label.field, label.value) for label in series.labels] == [("resource", job.id)]
    assert series.unit == "bytes"
    assert 290 * MiB <= max(value.value for value in series.values) <= 330 * MiB
    assert job.started_at <= series.values[0].timestamp <= job.finished_at
    [cpu_series] = get_cpu.sync(client=render, resource=job.id, resolution_seconds=1)
    assert cpu_series.unit == "cpu"
    # Cores used per one-second bucket: the CPU seconds between points over their interval. A
    # single-threaded dd uses at most one core. The plan's 0.5 CPU quota is not a bound on one
    # second: the kernel's page zeroing for 300 MB runs past the quota (CI saw 0.7 s in the
    # first second) and is paid back in periods the sleeping job never uses.
    assert cpu_series.values
    assert all(0 <= value.value <= 1.05 for value in cpu_series.values)
    points = usage.points
    assert sum(value.value for value in cpu_series.values) == pytest.approx(
        points[-1][2] - points[0][2], abs=0.05
    )

    # The job's page draws it, and says it in words.
    client.force_login(owner)
    page = client.get(f"/services/{job_service.id}/jobs/{job.id}/").content.decode()
    assert 'class="usage-chart"' in page
    assert '<polyline class="memory"' in page
    assert f"Peak memory <strong>{round(peak_mb)} MB</strong> of 512 MB" in page
    assert "usage-hint" not in page


def test_a_job_allocating_600_mb_on_a_512_mb_plan_is_killed_and_gets_the_hint(
    live_worker, job_service, render, client, owner
):
    starter(job_service)
    job = create_job(job_service, "dd if=/dev/zero bs=600M count=1 | sleep 4; echo done")
    wait_finished(job, timeout=40)

    assert job.status == JobStatus.FAILED
    assert job.reason == {"oomKilled": {"memoryLimit": "512Mi"}}
    assert job.peak_memory_bytes >= 500 * MiB  # it reached the limit: that is why it was killed
    hint = "ran out of memory at 512 MB: try Standard, 2 GB"
    retrieved = client_get(render, f"/services/{job_service.id}/jobs/{job.id}")
    assert retrieved["usageHint"] == hint
    assert retrieved["peakMemoryMB"] >= 500
    client.force_login(owner)
    page = client.get(f"/services/{job_service.id}/jobs/{job.id}/").content.decode()
    assert "Ran out of memory at 512 MB: try Standard, 2 GB" in page


def test_the_cgroup_files_read_what_the_engines_stats_endpoint_reports(
    busybox_image, docker_client, runner_instance
):
    """The cheap reading (the cgroup's files, found from the container's process) and the
    engine's own stats agree, and the files cost a small fraction of the endpoint's call."""
    container = docker_client.containers.run(
        busybox_image,
        ["sh", "-c", "dd if=/dev/zero bs=100M count=1 | sleep 30"],
        detach=True,
        mem_limit="256m",
        memswap_limit="256m",
        network_mode="none",
        labels={"oneoff.instance": runner_instance},
    )
    client = new_client()
    try:
        time.sleep(1.5)
        container.reload()
        files = find_cgroup(container.attrs["State"]["Pid"], container.id)
        assert files is not None, "this host's cgroup files should be readable"
        # Found without the pid too (a runner in another pid namespace), from the engine's path.
        assert find_cgroup(None, container.id) == files
        stats = StatsReader(lambda: client, container.id)
        began = time.perf_counter()
        from_files = files.read()
        files_took = time.perf_counter() - began
        began = time.perf_counter()
        from_engine = stats.read()
        engine_took = time.perf_counter() - began
        print(f"cgroup files {files_took * 1e6:.0f} us, stats endpoint {engine_took * 1e3:.1f} ms")
        assert abs(from_files.memory_bytes - from_engine.memory_bytes) < 4 * MiB
        assert 100 * MiB <= from_files.peak_bytes <= 110 * MiB
        assert abs(from_files.cpu_seconds - from_engine.cpu_seconds) < 0.5
        assert files_took < engine_took
    finally:
        client.close()
        container.remove(force=True)


def client_get(render: AuthenticatedClient, path: str):
    response = render.get_httpx_client().get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_sampling_off_leaves_the_fields_unknown(live_worker, job_service):
    live_worker.restart(JOB_USAGE_SAMPLE_SECONDS="0")
    try:
        job = create_job(job_service, "sleep 2")
        wait_status(job, JobStatus.RUNNING)
        wait_finished(job, timeout=30)
        job = Job.objects.get(pk=job.pk)
        assert job.status == JobStatus.SUCCEEDED
        assert job.peak_memory_bytes is None
        assert job.cpu_seconds is None
        assert not JobUsage.objects.filter(job=job).exists()
    finally:
        live_worker.restart()


def test_without_the_cgroup_files_the_engines_stats_endpoint_is_read(live_worker, job_service):
    live_worker.restart(JOB_USAGE_SOURCE="api")
    try:
        job = create_job(job_service, "dd if=/dev/zero bs=200M count=1 | sleep 4")
        wait_finished(job, timeout=40)
        assert job.status == JobStatus.SUCCEEDED, job.reason
        # The endpoint's memory_stats.max_usage (cgroup v1) or its usage readings (v2).
        assert 190 <= job.peak_memory_bytes / MiB <= 230
        assert job.cpu_seconds > 0
    finally:
        live_worker.restart()

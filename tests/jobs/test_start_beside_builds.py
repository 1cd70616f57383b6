"""Builds and job starts on separate Celery queues, each served by worker threads of its own: four
slow builds of one workspace (the attack of issue 13: they held another workspace's job
``pending`` for 49 s when builds and job starts shared the worker's four threads) do not delay
another workspace's job start. Real workers (``-Q jobs`` and ``-Q builds``), engine and git."""

import time

import pytest

from config.celery import BUILDS_QUEUE, JOBS_QUEUE, app
from jobs.launch import cancel_job, create_job
from jobs.models import Job, JobStatus
from services.builds import queue as builds
from services.models import Build, BuildStatus
from tests.helpers import BASE, Repo, wait_finished, wait_for, wait_status

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# Four builds may run at once, all of one workspace: every build thread is taken.
WORKER_ENV = {"BUILD_WORKER_CONCURRENCY": "4", "BUILD_CONCURRENCY_PER_WORKSPACE": "4"}
SLEEP = 60  # seconds each build's RUN step sleeps


def test_build_tasks_go_to_the_builds_queue_and_the_rest_to_jobs():
    def queue_of(task: str) -> str:
        return app.amqp.router.route({}, task)["queue"].name

    assert queue_of("services.tasks.run_build") == BUILDS_QUEUE
    assert queue_of("services.tasks.cleanup_images") == BUILDS_QUEUE
    for task in (
        "jobs.tasks.start_job",
        "jobs.tasks.sweep",
        "jobs.tasks.heartbeat",
        "services.tasks.sweep_builds",
        "jobs.tasks.purge_expired_logs",
    ):
        assert queue_of(task) == JOBS_QUEUE


def time_to_running(service) -> tuple[float, Job]:
    began = time.monotonic()
    job = create_job(service, "echo started; sleep 30")
    wait_status(job, JobStatus.RUNNING, timeout=90)
    return time.monotonic() - began, job


def test_four_sleeping_builds_do_not_delay_a_job_start(
    live_worker, job_service, make_service, other_workspace, busybox_image
):
    # The live workers: one serves the jobs queue (and supervises), one the builds queue.
    assert "supervisor running" not in live_worker.builds_tail(200)

    # A job start with nothing building, as the baseline.
    baseline, job = time_to_running(job_service)
    cancel_job(job)
    wait_finished(job)

    # Four slow builds of another workspace, each of its own service.
    marker = f"sleepy-{time.monotonic_ns()}"
    requested = []
    for i in range(4):
        repo = Repo(live_worker.var_dir / "repos" / other_workspace.id / f"{marker}-{i}")
        repo.commit({"Dockerfile": f"FROM {BASE}\nRUN echo {marker} && sleep {SLEEP}\n"})
        service = make_service(other_workspace, name=f"sleepy-{i}", repo_url=repo.url)
        requested.append(builds.request_build(service))

    def all_building():
        return all(
            Build.objects.filter(pk=b.pk, status=BuildStatus.BUILDING).exists()
            and b.log_lines.filter(text=marker).exists()
            for b in requested
        )

    try:
        wait_for(all_building, timeout=60, message="four builds to be in their RUN sleep")

        # Now a job of this workspace: it starts as fast as with nothing building.
        beside, job = time_to_running(job_service)
        print(
            f"create -> running: {beside:.2f} s beside four building builds, "
            f"{baseline:.2f} s with none"
        )
        assert beside < 5, f"the job waited {beside:.1f} s for the builds"
        assert all(Build.objects.get(pk=b.pk).status == BuildStatus.BUILDING for b in requested), (
            "the builds must still be running when the job starts"
        )
        cancel_job(job)
        wait_finished(job)
    finally:
        for build in Build.objects.filter(pk__in=[b.pk for b in requested]):
            if not build.is_finished:
                builds.cancel_build(build)
        wait_for(
            lambda: all(Build.objects.get(pk=b.pk).is_finished for b in requested),
            timeout=30,
            message="the builds to stop",
        )

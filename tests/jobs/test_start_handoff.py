"""A start hands its end (the container's inspect, the running row, the log's follower) to the
supervisor's own threads, so that the start_job thread goes on to the next job's start at once
(issue 20: 100 jobs at once, four at a time). Real engine and PostgreSQL; the supervisor runs in
this process, as in a worker."""

import threading

import pytest
from django.utils import timezone

from jobs import launch, runner
from jobs.launch import cancel_job, create_job
from jobs.models import Job, JobStatus
from jobs.supervisor import Supervisor
from tests.helpers import wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def supervisor(monkeypatch):
    """This process's supervisor, hooked into the runner as ``start_supervisor`` does (the lock
    file is skipped: no worker of this module holds it)."""
    supervisor = Supervisor(interval=0.1)
    monkeypatch.setattr(supervisor, "_acquire_lock", lambda: True)
    supervisor.start()
    wait_for(lambda: supervisor.active, 10, message="the supervisor's start")
    monkeypatch.setattr(runner, "on_starting", supervisor.starting)
    monkeypatch.setattr(runner, "on_launched", supervisor.launched)
    monkeypatch.setattr(runner, "on_started", supervisor.follow_now)
    yield supervisor
    supervisor.stop(15)
    assert not supervisor.is_alive()
    assert not any(thread.is_alive() for thread in supervisor.launchers)


@pytest.fixture
def unsent(monkeypatch):
    """Jobs created with their start message sent nowhere: this process starts them."""

    def sent_nowhere(job_id):
        Job.objects.filter(pk=job_id).update(start_enqueued_at=timezone.now())
        return True

    monkeypatch.setattr(launch, "enqueue_start", sent_nowhere)


@pytest.fixture
def marked_by(monkeypatch):
    """The names of the threads that ran ``runner.mark_running``."""
    names: list[str] = []
    real = runner.mark_running

    def recorded(*args, **kwargs):
        names.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "mark_running", recorded)
    return names


def test_the_supervisor_finishes_the_start_off_the_start_jobs_thread(
    supervisor, unsent, marked_by, job_service, docker_client
):
    job = create_job(job_service, "echo first; sleep 1; echo last")
    assert runner.start(job.id) == runner.StartOutcome.STARTED
    wait_for(lambda: marked_by, 10, message="the start's end")
    assert marked_by[0].startswith("oneoff-launch-"), marked_by
    assert threading.current_thread().name not in marked_by
    running = wait_for(lambda: Job.objects.filter(pk=job.id, status=JobStatus.RUNNING).first(), 10)
    # Docker's own StartedAt, from the inspect the supervisor's thread made, and its host.
    attrs = docker_client.api.inspect_container(running.container_id)
    assert running.started_at == runner.docker_time(attrs["State"]["StartedAt"])
    assert running.host
    # Its log was followed from the first line, and the supervisor finishes it.
    done = wait_for(lambda: Job.objects.filter(pk=job.id, status=JobStatus.SUCCEEDED).first(), 20)
    wait_for(lambda: done.log_lines.count() == 2, 10, message="both lines stored")
    assert list(done.log_lines.order_by("seq").values_list("text", flat=True)) == [
        "first",
        "last",
    ]


def test_a_cancel_before_the_start_is_finished_ends_the_job_canceled(
    supervisor, unsent, monkeypatch, job_service, docker_client
):
    """A cancel that lands between the engine's start and the running row (written on the
    supervisor's thread) is carried out: the job ends canceled and its container is removed."""
    job = create_job(job_service, "sleep 30")
    gate = threading.Event()
    real = runner.mark_running

    def after_the_cancel(*args, **kwargs):
        gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "mark_running", after_the_cancel)
    assert runner.start(job.id) == runner.StartOutcome.STARTED
    cancel_job(Job.objects.get(pk=job.id))
    gate.set()
    wait_for(
        lambda: Job.objects.filter(pk=job.id, status=JobStatus.CANCELED).exists(),
        30,
        message="the job canceled",
    )
    wait_for(
        lambda: not docker_client.api.containers(all=True, filters={"name": job.container_name}),
        30,
        message="its container removed",
    )


def test_a_supervisor_that_is_stopping_hands_nothing_over(unsent, marked_by, job_service):
    """A standby (or stopped) supervisor follows nothing: the start_job thread finishes the start
    itself, and the job runs."""
    stopped = Supervisor(interval=0.1)
    assert stopped.launched(Job(), "c0ffee") is False
    job = create_job(job_service, "sleep 5")
    try:
        runner.on_launched = stopped.launched
        assert runner.start(job.id) == runner.StartOutcome.STARTED
    finally:
        runner.on_launched = None
    assert marked_by == [threading.current_thread().name]
    assert Job.objects.get(pk=job.id).status == JobStatus.RUNNING
    runner.remove(runner.get_client(), Job.objects.get(pk=job.id).container_id)

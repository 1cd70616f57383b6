"""Restarting the Docker Engine under running jobs, on a private engine (tests/plugins/engine.py):
with live-restore the job runs on and its log is stored whole, each line once; without it the
job is recorded as lost to the engine, not as its own failure."""

import itertools

import pytest
from django.utils import timezone

from jobs.launch import create_job
from jobs.models import JobStatus
from services.models import Build, BuildStatus
from tests.helpers import wait_finished, wait_for
from tests.plugins.worker import LiveWorker

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LINES = 80
# LINES numbered lines over about 8 s: the engine restarts in the middle.
COUNTER = f"i=0; while [ $i -lt {LINES} ]; do echo line $i; i=$((i+1)); sleep 0.1; done"


@pytest.fixture(scope="module")
def engine_worker(
    private_engine, django_db_setup, django_db_blocker, runner_instance, tmp_path_factory
):
    """The Celery workers of a runner host whose engine is the private one."""
    with django_db_blocker.unblock():
        worker = LiveWorker(
            runner_instance,
            tmp_path_factory.mktemp("engine-worker"),
            {"DOCKER_HOST": private_engine.url},
        )
        worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def engine_service(make_service, private_engine):
    service = make_service(name="engine")
    now = timezone.now()
    Build.objects.create(
        service=service,
        status=BuildStatus.SUCCEEDED,
        started_at=now,
        finished_at=now,
        image_id=private_engine.image_id,
    )
    return service


def start_and_restart(private_engine, engine_service, live_restore: bool):
    job = create_job(engine_service, COUNTER)

    def some_lines_stored():
        job.refresh_from_db()
        return job.status == JobStatus.RUNNING and 10 <= job.log_line_count < LINES // 2

    wait_for(some_lines_stored, timeout=30, message="the first lines to be stored")
    private_engine.restart(live_restore=live_restore, down_for=1.0)
    return job


def stored_texts(job) -> list[str]:
    stamps = list(job.log_lines.order_by("seq").values_list("timestamp", flat=True))
    assert all(a < b for a, b in itertools.pairwise(stamps))
    return list(job.log_lines.order_by("seq").values_list("text", flat=True))


@pytest.mark.parametrize("source", ["auto", "api"])
def test_a_job_survives_an_engine_restart_with_live_restore_and_keeps_every_line_once(
    private_engine, engine_worker, engine_service, source
):
    if source != "auto":
        engine_worker.restart(DOCKER_HOST=private_engine.url, JOB_LOG_SOURCE=source)
    try:
        job = start_and_restart(private_engine, engine_service, live_restore=True)
        wait_finished(job, timeout=60)
        assert job.status == JobStatus.SUCCEEDED, (job.reason, engine_worker.tail())
        assert job.exit_code == 0
        assert stored_texts(job) == [f"line {i}" for i in range(LINES)]
        assert job.log_line_count == LINES
        console = engine_worker.tail(400)
        assert "the Docker Engine answers again" in console
        if source == "auto":
            # The file follower waited for the engine and read on from where it was.
            assert console.count(f"following the log of {job.id} from") == 1, console
    finally:
        if source != "auto":
            engine_worker.restart(DOCKER_HOST=private_engine.url)


def test_a_job_its_engine_killed_on_restart_is_recorded_as_lost_to_the_engine(
    private_engine, engine_worker, engine_service
):
    try:
        job = start_and_restart(private_engine, engine_service, live_restore=False)
        wait_finished(job, timeout=60)
    finally:
        private_engine.restart(live_restore=True)
    assert job.status == JobStatus.FAILED
    assert "nonZeroExit" not in job.reason, job.reason
    assert job.reason["evicted"] is True
    assert "Docker Engine" in job.reason["evictionReason"]
    assert "restarted" in job.reason["evictionReason"]
    texts = stored_texts(job)
    assert 10 <= len(texts) < LINES
    assert texts == [f"line {i}" for i in range(len(texts))]  # every line it printed, once

"""A Redis (broker) restart under load: the jobs worker survives it and every job finishes.

The worker runs on a redis-server of this module's own (tests.helpers.PrivateRedis), restarted ten
times while jobs are pending and running, so unacknowledged messages (``acks_late``) are always
there when the connection drops (issue 14, point 1: kombu crashed the worker restoring them).
"""

import random
import time

import pytest

from config.celery import app
from jobs import runner
from jobs.launch import create_job
from jobs.models import Job, JobStatus
from tests.helpers import PrivateRedis, wait_for
from tests.plugins.worker import LiveWorker

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

RESTARTS = 10
JOBS_PER_RESTART = 3


@pytest.fixture
def redis(tmp_path):
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop(kill=True)


@pytest.fixture
def worker(redis, runner_instance, tmp_path_factory, django_db_blocker):
    with django_db_blocker.unblock():
        live = LiveWorker(
            runner_instance,
            tmp_path_factory.mktemp("broker-restart-worker"),
            {"CELERY_BROKER_URL": redis.url()},
        ).start()
    yield live
    live.stop()


@pytest.fixture
def publish_to(monkeypatch):
    """Start messages from this process (create_job, the sweep) go to the given broker."""

    def point_at(url: str) -> None:
        send_task = app.send_task

        def send_task_to_private_broker(name, args=None, kwargs=None, **options):
            with app.connection_for_write(url) as connection:
                return send_task(name, args, kwargs, connection=connection, **options)

        monkeypatch.setattr(app, "send_task", send_task_to_private_broker)

    return point_at


def test_the_worker_survives_ten_redis_restarts_under_load_and_every_job_finishes(
    redis, worker, publish_to, job_service
):
    publish_to(redis.url())
    rng = random.Random(14)
    jobs = []
    for round_ in range(RESTARTS):
        for i in range(JOBS_PER_RESTART):
            jobs.append(create_job(job_service, f"echo r{round_}-{i}; sleep 1"))
        # Some start messages delivered and not yet acknowledged, some waiting in the queue.
        time.sleep(rng.uniform(0.1, 1.5))
        redis.restart()
        time.sleep(rng.uniform(0.5, 2.0))
        assert worker.process is not None
        assert worker.process.poll() is None, f"restart {round_ + 1}:\n{worker.tail(120)}"

    def all_finished():
        runner.sweep()  # what beat does every 15 s: re-enqueue a start message that was lost
        return not Job.objects.filter(pk__in=[j.pk for j in jobs], finished_at=None).exists()

    wait_for(all_finished, 120, 1.0, "every job to finish")
    assert worker.process.poll() is None, worker.tail(120)
    for job in jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, (job.id, job.status, job.reason)
        assert list(job.log_lines.values_list("text", flat=True)) == [
            job.start_command.split()[1].rstrip(";")
        ]
    log = worker.log_path.read_text(errors="replace")
    assert log.count("Connection to broker lost") >= RESTARTS // 2
    assert "AttributeError" not in log, worker.tail(200)
    assert "Unrecoverable error" not in log

"""A service's ``maxConcurrentJobs`` against the real parts: five jobs created through the API
on a service limited to two, started by two real Celery worker processes of four threads each
(so starts race across processes) on the Docker Engine. What runs at once is measured from the
engine's container list, not from the database."""

import contextlib
import itertools
import signal
import subprocess
import threading
import time

import pytest
from django.test import Client

from jobs.models import Job, JobStatus
from tests.helpers import wait_finished, wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


class ContainerSampler(threading.Thread):
    """Lists the engine's running containers of one service of this test run every ~100 ms and
    keeps the most it ever saw at once."""

    def __init__(self, docker_client, instance: str, service_id: str):
        super().__init__(daemon=True)
        self.client = docker_client
        self.filters = {
            "label": [f"oneoff.instance={instance}", f"oneoff.service={service_id}"],
            "status": "running",
        }
        self.most = 0
        self.samples = 0
        self.seen: set[str] = set()
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            running = self.client.api.containers(filters=self.filters)
            self.most = max(self.most, len(running))
            self.seen |= {c["Labels"].get("oneoff.job") for c in running}
            self.samples += 1
            self.halt.wait(0.1)

    def stop(self):
        self.halt.set()
        self.join(10)


@contextlib.contextmanager
def second_jobs_worker(live_worker):
    """Another ``celery worker -Q jobs`` process of the same runner host beside ``live_worker``'s:
    its threads take start messages too (its supervisor stands by on the host's lock), so two
    processes race to start the service's jobs."""
    log_path = live_worker.var_dir / "second-worker.log"
    live_worker.starts += 1  # a Celery node name of its own
    process, offset = live_worker._spawn("jobs", log_path, live_worker.env())

    def ready():
        assert process.poll() is None, log_path.read_text(errors="replace")
        with open(log_path, "rb") as log:
            log.seek(offset)
            return b" ready." in log.read()

    try:
        wait_for(ready, 40, 0.1, "a second jobs worker to be ready")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_five_jobs_never_run_more_than_two_at_once_and_all_finish(
    owner_api, viewer_api, job_service, live_worker, docker_client, runner_instance
):
    with second_jobs_worker(live_worker):
        _five_jobs_two_at_once(owner_api, viewer_api, job_service, docker_client, runner_instance)


def _five_jobs_two_at_once(owner_api, viewer_api, job_service, docker_client, runner_instance):
    r = owner_api.patch(f"/v1/services/{job_service.id}", {"maxConcurrentJobs": 2})
    assert r.status_code == 200, r.content
    assert r.json()["maxConcurrentJobs"] == 2
    sampler = ContainerSampler(docker_client, runner_instance, job_service.id)
    sampler.start()
    try:
        ids = []
        for n in range(5):
            r = owner_api.post(
                f"/v1/services/{job_service.id}/jobs", {"startCommand": f"echo {n}; sleep 2"}
            )
            assert r.status_code == 201, r.content
            ids.append(r.json()["id"])

        # The three beyond the limit wait pending, saying why: in the API and on the job page.
        def waiting_reason():
            body = viewer_api.get(f"/v1/services/{job_service.id}/jobs/{ids[-1]}").json()
            return body.get("pendingReason")

        reason = wait_for(waiting_reason, 15, 0.1, "the last job's pending reason")
        assert reason.startswith("waiting: 2 of 2 concurrent jobs of this service are running")
        page = Client()
        page.force_login(viewer_api.key.user)
        html = page.get(f"/services/{job_service.id}/jobs/{ids[-1]}/").content.decode()
        assert "waiting: 2 of 2 concurrent jobs of this service are running" in html

        jobs = [wait_finished(Job.objects.get(pk=i), timeout=60) for i in ids]
    finally:
        sampler.stop()
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * 5
    assert sampler.seen >= set(ids)  # every job's container was seen running
    assert sampler.most == 2, sampler.samples  # the limit was used, and never passed
    # In creation order, and each waiting job started as soon as a slot freed (the end's own
    # start message, not the 15 s sweep).
    # Slots go in creation order: no job takes a slot an older waiting job needs. Two slots
    # freed at once (the first two jobs end together) go to the next two jobs, whose start
    # messages two worker threads may take in either order: a younger job is claimed before an
    # older one only within such a moment, never a turn (a 2 s job) ahead of it.
    claimed = [job.id for job in sorted(jobs, key=lambda job: job.claimed_at)]
    assert set(claimed[:2]) == set(ids[:2])
    by_id = {job.id: job for job in jobs}
    for older, younger in itertools.combinations(ids, 2):
        ahead = (by_id[older].claimed_at - by_id[younger].claimed_at).total_seconds()
        assert ahead < 1, (older, younger, ahead)
    gaps = []
    for waiting in jobs[2:]:
        freed = max(j.finished_at for j in jobs if j.finished_at <= waiting.started_at)
        gaps.append((waiting.started_at - freed).total_seconds())
    print(f"a freed slot to the next start: {', '.join(f'{gap:.2f} s' for gap in gaps)}")
    assert max(gaps) < 3
    # The last one waited two turns, yet JOB_START_TIMEOUT counts from its last wait.
    assert jobs[4].slot_waited_at is not None


def test_a_higher_limit_starts_waiting_jobs_at_once(owner_api, job_service, live_worker):
    owner_api.patch(f"/v1/services/{job_service.id}", {"maxConcurrentJobs": 1})
    ids = [
        owner_api.post(f"/v1/services/{job_service.id}/jobs", {"startCommand": "sleep 20"}).json()[
            "id"
        ]
        for _ in range(2)
    ]

    def second_waits():
        return Job.objects.filter(pk=ids[1], note__startswith="waiting:").exists()

    wait_for(second_waits, 15, 0.1, "the second job to wait")
    began = time.monotonic()
    r = owner_api.patch(f"/v1/services/{job_service.id}", {"maxConcurrentJobs": None})
    assert "maxConcurrentJobs" not in r.json()
    wait_for(
        lambda: Job.objects.filter(pk=ids[1], status=JobStatus.RUNNING).exists(),
        10,
        0.05,
        "the second job to start",
    )
    assert time.monotonic() - began < 5  # not the sweep's next pass
    for job_id in ids:
        owner_api.post(f"/v1/services/{job_service.id}/jobs/{job_id}/cancel")
    for job_id in ids:
        wait_finished(Job.objects.get(pk=job_id), timeout=20)

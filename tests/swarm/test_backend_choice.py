"""Which backend runs jobs (JOB_BACKEND), and how a swarm task's container is known as a job's
own: only with JOB_BACKEND=swarm, by its service's name (the job's container name) and, before
the job recorded its container, the build's image, like any container (is_own)."""

from jobs import runner
from jobs.backends import get_backend
from jobs.models import Job


def test_the_default_backend_is_docker_and_swarm_is_chosen_by_the_setting(settings):
    assert get_backend().name == "docker"
    settings.JOB_BACKEND = "swarm"
    assert get_backend().name == "swarm"


def task_item(job_id: str, image: str) -> dict:
    name = Job(id=job_id).container_name
    return {
        "Id": "c" * 64,
        "Names": [f"/{name}.nodeid.taskid"],
        "ImageID": image,
        "Labels": {"com.docker.swarm.service.name": name, "oneoff.job": job_id},
    }


def test_a_swarm_task_container_is_a_jobs_own_only_with_the_swarm_backend(settings):
    job_id = "job-abc"
    item = task_item(job_id, "sha256:" + "1" * 64)
    assert not runner.is_own(job_id, None, item)  # JOB_BACKEND=docker: Swarm names nothing
    settings.JOB_BACKEND = "swarm"
    assert runner.is_own(job_id, None, item)
    # Another service's task, or a name Swarm did not give, is not.
    other = {**item, "Labels": {"com.docker.swarm.service.name": "oneoff-job-other"}}
    assert not runner.is_own(job_id, None, other)
    assert not runner.is_own(job_id, None, {**item, "Names": ["/oneoff-job-abcd.x.y"]})

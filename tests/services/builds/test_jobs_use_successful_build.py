"""Jobs run the latest successful build: never a failed, canceled or unfinished newer one."""

import pytest

from jobs.launch import create_job
from services.builds import queue as builds
from services.models import BuildStatus
from tests.helpers import BASE, Background, wait_for

pytestmark = pytest.mark.docker

GOOD = f'FROM {BASE}\nCOPY version.txt /version.txt\nCMD ["cat", "/version.txt"]\n'


def output_of(docker_client, image_id: str) -> str:
    return docker_client.containers.run(
        image_id, network_mode="none", remove=True, labels={"oneoff.test": "builds"}
    ).decode()


def test_a_failed_newer_build_leaves_jobs_on_the_older_successful_one(repo_service, docker_client):
    service = repo_service({"Dockerfile": GOOD, "version.txt": "good\n"})
    good = builds.run_build(builds.request_build(service).id, client=docker_client)
    assert good.status == BuildStatus.SUCCEEDED, good.reason
    service.repo.commit(
        {"Dockerfile": GOOD + "RUN exit 1\n", "version.txt": "broken\n"}, "Break the build"
    )
    bad = builds.run_build(builds.request_build(service).id, client=docker_client)
    assert bad.status == BuildStatus.FAILED
    canceled = builds.cancel_build(builds.request_build(service))
    assert canceled.status == BuildStatus.CANCELED

    job = create_job(service, "cat /version.txt")

    assert job.build == good
    assert output_of(docker_client, job.build.image_id) == "good\n"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_job_created_while_a_build_runs_uses_the_previous_successful_build(
    repo_service, docker_client
):
    service = repo_service({"Dockerfile": GOOD, "version.txt": "one\n"})
    first = builds.run_build(builds.request_build(service).id, client=docker_client)
    assert first.status == BuildStatus.SUCCEEDED, first.reason
    service.repo.commit(
        {"Dockerfile": GOOD + "RUN echo slow-step && sleep 2\n", "version.txt": "two\n"}, "Two"
    )
    second = builds.request_build(service)
    runner = Background(builds.run_build, second.id, client=docker_client)
    runner.start()
    wait_for(lambda: second.log_lines.filter(text="slow-step").exists())

    during = create_job(service, "cat /version.txt")

    assert during.build == first
    second = runner.finish()
    assert second.status == BuildStatus.SUCCEEDED, second.reason
    after = create_job(service, "cat /version.txt")
    assert after.build == second
    during.refresh_from_db()
    assert during.build == first  # an existing job never moves to a newer build
    assert output_of(docker_client, during.build.image_id) == "one\n"
    assert output_of(docker_client, after.build.image_id) == "two\n"

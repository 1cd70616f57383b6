"""The hosts page (issue 19, point 4): platform staff only; in swarm mode the manager's nodes and
the reservations of their tasks (the real swarm lab), in docker mode the runner hosts and the one
engine. Names come from outside (a node's name, a host's RUNNER_HOST) and are escaped."""

import docker.types
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from jobs.models import JobStatus, RunnerHost
from jobs.runner import LABEL_INSTANCE
from tests.helpers import wait_for

XSS = '<img src=x onerror="alert(1)">'


@pytest.fixture
def staff(owner):
    owner.is_staff = True
    owner.save()
    return owner


def test_only_staff_see_the_hosts(login, owner, client):
    assert client.get("/hosts/").status_code == 302  # to the sign-in page
    assert login(owner).get("/hosts/").status_code == 404
    owner.is_staff = True
    owner.save()
    assert login(owner).get("/hosts/").status_code == 200


def test_docker_mode_lists_runner_hosts_with_the_engines_totals(
    login, staff, settings, docker_client, make_job, service
):
    settings.JOB_BACKEND = "docker"
    settings.RUNNER_HOST = "web-host"
    RunnerHost.objects.create(name="web-host", last_seen_at=timezone.now(), docker_ok=True)
    RunnerHost.objects.create(
        name=XSS, last_seen_at=timezone.now() - timezone.timedelta(days=1), docker_ok=False
    )
    make_job(status=JobStatus.RUNNING, host="web-host")
    make_job(status=JobStatus.RUNNING, host="web-host")
    make_job(status=JobStatus.SUCCEEDED, host="web-host")

    page = login(staff).get("/hosts/").content.decode()

    info = docker_client.info()
    row = page.split('<th scope="row">web-host', 1)[1].split("</tr>", 1)[0]
    plan = service.plan
    assert f"{2 * plan.memory_mb} MB / {info['MemTotal'] // (1024 * 1024)} MB" in row
    assert f"/ {info['NCPU']}</td>" in row
    assert "<td>up</td>" in row
    assert '<td class="num">2</td>' in row
    assert XSS not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    lost = page.split("&lt;img", 1)[1].split("</tr>", 1)[0]
    assert "<td>lost</td>" in lost
    assert "engine error" in lost


def test_swarm_mode_shows_the_nodes_and_what_their_tasks_reserve(
    login, staff, settings, monkeypatch, swarm_lab
):
    settings.JOB_BACKEND = "swarm"
    monkeypatch.setenv("DOCKER_HOST", swarm_lab.manager)
    manager = swarm_lab.client(1)

    def service_on_node2(name, memory_mb, cpu, labels):
        return manager.services.create(
            swarm_lab.image,
            command=["sleep", "60"],
            name=name,
            mode=docker.types.ServiceMode("replicated-job"),
            restart_policy=docker.types.RestartPolicy(condition="none"),
            resources=docker.types.Resources(
                mem_reservation=memory_mb * 1024 * 1024, cpu_reservation=int(cpu * 1e9)
            ),
            constraints=["node.hostname==node2"],
            labels=labels,
        )

    # A job of this installation's, and a service that is not Oneoff's: both reserve room, only
    # the job counts as a running job.
    service = service_on_node2(
        "hosts-page", 48, 0.25, {LABEL_INSTANCE: django_settings.ONEOFF_INSTANCE}
    )
    foreign = service_on_node2("not-a-job", 16, 0.1, {})
    node3 = next(n for n in manager.nodes.list() if n.attrs["Description"]["Hostname"] == "node3")
    spec = node3.attrs["Spec"]
    try:
        for each in (service, foreign):
            wait_for(
                lambda each=each: any(t["Status"]["State"] == "running" for t in each.tasks()),
                60,
                0.2,
                "the tasks to run",
            )
        node3.update({**spec, "Name": XSS})
        page = login(staff).get("/hosts/").content.decode()
    finally:
        service.remove()
        foreign.remove()
        node3.reload()
        node3.update({**node3.attrs["Spec"], "Name": ""})

    for name in ("node1", "node2"):
        assert f'<th scope="row">{name}' in page
    rows = {row.split("<", 1)[0].strip(): row for row in page.split('<th scope="row">')[1:]}
    total = manager.nodes.list(filters={"name": "node2"})[0].attrs["Description"]["Resources"]
    node2 = rows["node2"]
    assert f"64 MB / {total['MemoryBytes'] // (1024 * 1024)} MB" in node2
    assert f"0.35 / {total['NanoCPUs'] / 1e9:g}" in node2
    assert "<td>ready</td>" in node2
    assert "<td>active</td>" in node2
    assert '<td class="num">1</td>' in node2
    assert "manager" in rows["node1"]
    assert "0 MB /" in rows["node1"]
    assert XSS not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_swarm_mode_says_when_the_manager_does_not_answer(
    login, staff, settings, monkeypatch, tmp_path
):
    settings.JOB_BACKEND = "swarm"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    page = login(staff).get("/hosts/").content.decode()
    assert 'id="hosts-error"' in page
    assert "did not answer" in page

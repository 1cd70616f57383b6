"""The bundled example service: bootstrap_demo builds it through the normal build path."""

import contextlib
import io

import docker
import pytest
from django.core.management import call_command

from services.management.commands.bootstrap_demo import BASE_IMAGE
from services.models import BuildStatus, Service

pytestmark = pytest.mark.docker


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def bootstrap(*args) -> str:
    out = io.StringIO()
    call_command("bootstrap_demo", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_bootstrap_demo_builds_the_example_and_its_scripts_run(db, var_dir, docker_client):
    """From nothing: the base image is removed first, so the first run makes it from Debian's
    busybox (offline) and builds the example on it, as `make run` does on a bare machine."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(BASE_IMAGE, force=True)

    output = bootstrap("--build-now")

    assert docker_client.images.get(BASE_IMAGE)
    assert output.count("with password") == 1
    assert "This password is shown only now." in output

    service = Service.objects.get(workspace__name="Demo", name="example")
    build = service.latest_successful_build()
    assert build is not None, output
    assert build.status == BuildStatus.SUCCEEDED
    assert f"build {build.id} succeeded" in output
    assert service.repo_url == (var_dir / service.workspace_id / "example").as_uri()
    assert build.commit_id
    assert build.image_tag == f"oneoff/{service.id}:{build.id}"
    assert build.log_lines.filter(text="example service built").exists()
    migrate = docker_client.containers.run(
        build.image_id,
        ["/bin/sh", "-c", "migrate"],
        environment={"STEP_SECONDS": "0"},
        network_mode="none",
        remove=True,
        labels={"oneoff.test": "builds"},
    ).decode()
    assert migrate.splitlines() == [
        "Running migrations for demo (version 1)",
        "  Applying 0001_step... OK",
        "  Applying 0002_step... OK",
        "  Applying 0003_step... OK",
        "Migrations complete.",
    ]

    # Running it again finds the example built and builds nothing new.
    again = bootstrap()
    assert f"Example service example ({service.id}) is built: {build.id}" in again
    assert "with password" not in again  # printed once, when the user was made
    assert "manage.py changepassword admin@example.com" in again
    assert service.builds.count() == 1


def test_bootstrap_demo_still_makes_the_workspace_without_git(db, var_dir, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    err = io.StringIO()

    out = io.StringIO()
    call_command("bootstrap_demo", stdout=out, stderr=err)

    assert "Sign in at http://localhost:8000/ as admin@example.com" in out.getvalue()
    assert "could not set up the example service" in err.getvalue()
    assert not Service.objects.filter(name="example").exists()

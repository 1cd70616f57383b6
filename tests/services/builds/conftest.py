"""Fixtures for build tests: git repositories made in the test, and removal of the image tags
the tests' builds made."""

import contextlib

import pytest

from services.models import Build
from tests.helpers import Repo, local_repo


@pytest.fixture(autouse=True)
def _local_repos(settings, tmp_path):
    """The test's repositories are made in tmp_path/<workspace id>/: builds of a workspace may
    clone by file:// from its folder of BUILD_LOCAL_REPOS_DIR only."""
    settings.BUILD_LOCAL_REPOS_DIR = tmp_path


@pytest.fixture
def make_repo(request):
    count = 0

    def make(workspace=None) -> Repo:
        nonlocal count
        count += 1
        return local_repo(workspace or request.getfixturevalue("workspace"), f"repo{count}")

    return make


@pytest.fixture
def repo_service(make_service, make_repo, busybox_image):
    """A service built from a fresh file:// repository (commit files with ``service.repo``)."""

    def make(files: dict[str, str] | None = None, ws=None, **fields):
        repo = make_repo(ws)
        if files is not None:
            repo.commit(files, "First commit")
        fields.setdefault("branch", "main")
        service = make_service(ws, repo_url=repo.url, **fields)
        service.repo = repo
        return service

    return make


@pytest.fixture(autouse=True)
def _remove_built_tags(request):
    """Remove the image tags this test's builds made, while the test database still has them."""
    if not {"db", "transactional_db"} & set(request.fixturenames):
        yield
        return
    request.getfixturevalue(
        "transactional_db" if "transactional_db" in request.fixturenames else "db"
    )
    yield
    tags = list(Build.objects.exclude(image_tag="").values_list("image_tag", flat=True))
    if not tags:
        return
    import docker

    client = docker.from_env(timeout=30)
    for tag in tags:
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(tag)

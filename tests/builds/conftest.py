"""Helpers for build tests: git repositories made in the test, threads that close their
database connection, and removal of the image tags the tests' builds made."""

import contextlib
import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from services.models import Build

BASE = "oneoff-test/busybox:latest"  # made by the busybox_image fixture
GIT_IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.test"]


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *GIT_IDENTITY, "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


class Repo:
    """A git repository on disk, reachable as a file:// URL."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()

    def commit(self, files: dict[str, str], message: str = "A commit") -> str:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        git(self.path, "add", "--all")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


@pytest.fixture
def make_repo(tmp_path):
    count = 0

    def make() -> Repo:
        nonlocal count
        count += 1
        return Repo(tmp_path / f"repo{count}")

    return make


@pytest.fixture
def repo_service(make_service, make_repo, busybox_image):
    """A service built from a fresh file:// repository (commit files with ``service.repo``)."""

    def make(files: dict[str, str] | None = None, **fields):
        repo = make_repo()
        if files is not None:
            repo.commit(files, "First commit")
        fields.setdefault("branch", "main")
        service = make_service(repo_url=repo.url, **fields)
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


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


class Background(threading.Thread):
    """Runs a function in a thread with its own database connection (transactional tests)."""

    def __init__(self, target, *args, **kwargs):
        super().__init__(daemon=True)
        self._call = (target, args, kwargs)
        self.result = None
        self.error: BaseException | None = None

    def run(self):
        target, args, kwargs = self._call
        try:
            self.result = target(*args, **kwargs)
        except BaseException as exc:
            self.error = exc
        finally:
            connection.close()

    def finish(self, timeout: float = 30.0):
        self.join(timeout)
        assert not self.is_alive(), "the background build did not end"
        if self.error:
            raise self.error
        return self.result

"""Real image registries on loopback, for tests that pull: Debian's ``docker-registry``
(the CNCF Distribution registry) serving plain HTTP on ``127.0.0.1:<free port>``, one per test
session, its storage in a temporary folder.

- ``registry``: open, anyone may push and pull.
- ``auth_registry``: htpasswd (bcrypt) basic auth; ``.username`` / ``.password`` (random per
  session) and ``.auth_config`` (docker-py's ``auth_config=``) let a test in.

Each yields a ``TestRegistry``: ``.host`` is ``"127.0.0.1:PORT"``, ``.reference("app:v1")`` is
``"127.0.0.1:PORT/app:v1"``, and ``.push(image, "app:v1")`` tags a local image (an id or a tag)
there, pushes it with the Docker SDK and returns the manifest digest (``sha256:…``); the local
tag is removed again, so the engine only has the image under the registry's name if a test pulls
it. dockerd treats registries on 127.0.0.0/8 as insecure by default, so plain HTTP needs no
daemon setting. Everything pushed lives in the session's temporary folder; the registry stops,
and the images pulled from it are removed, when the session ends.

A registry is a part the tests cannot do without: a missing ``docker-registry`` (or, for the
auth one, ``htpasswd`` from apache2-utils) fails the test, on a laptop too, never skips it
(``.ci/run`` installs both).
"""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT = 15.0

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {host}
  secret: {secret}
"""

AUTH = """\
auth:
  htpasswd:
    realm: oneoff-test-registry
    path: {htpasswd}
"""


@dataclass
class TestRegistry:
    """A running registry (see the module docstring)."""

    __test__ = False  # not a test class, whatever its name says

    host: str
    folder: Path
    process: subprocess.Popen
    docker: Any = field(repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def auth_config(self) -> dict | None:
        """docker-py's ``auth_config`` for this registry (None for the open one)."""
        if self.username is None:
            return None
        return {"username": self.username, "password": self.password}

    def reference(self, repo_tag: str) -> str:
        """``repo:tag`` (or ``repo@sha256:…``) under this registry's host."""
        return f"{self.host}/{repo_tag}"

    def push(self, image: str, repo_tag: str) -> str:
        """Push a local image (id or tag) as ``repo:tag``; returns the manifest digest."""
        repo, _, tag = repo_tag.rpartition(":")
        if not repo or "/" in tag:
            raise ValueError(f"push needs repo:tag, not {repo_tag!r}")
        target = self.reference(repo)
        self.docker.images.get(image).tag(target, tag)
        digest = ""
        errors = []
        try:
            for event in self.docker.images.push(
                target, tag=tag, auth_config=self.auth_config, stream=True, decode=True
            ):
                if "error" in event:
                    errors.append(event["error"])
                digest = event.get("aux", {}).get("Digest", digest)
        finally:
            with contextlib.suppress(Exception):
                self.docker.images.remove(f"{target}:{tag}", noprune=True)
        if errors or not digest:
            pytest.fail(f"push of {image} to {target}:{tag} failed: {errors or 'no digest'}")
        return digest

    def log(self) -> str:
        try:
            return (self.folder / "registry.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        # Whatever a test pulled from this registry: the port (and so the name) dies with it.
        with contextlib.suppress(Exception):
            for image in self.docker.images.list():
                for ref in [*image.tags, *(image.attrs.get("RepoDigests") or [])]:
                    if ref.startswith(f"{self.host}/"):
                        with contextlib.suppress(Exception):
                            self.docker.images.remove(ref, noprune=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _binary(name: str, package: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else "")
    if not path:
        pytest.fail(
            f"{name} is needed for the test registry: apt-get install {package}", pytrace=False
        )
    return path


def _htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd entry (the only kind the registry takes) from apache2-utils' htpasswd."""
    htpasswd = _binary("htpasswd", "apache2-utils")
    made = subprocess.run(
        [htpasswd, "-nbB", username, password], capture_output=True, text=True, check=True
    )
    return made.stdout.strip()


def _wait_ready(registry: TestRegistry) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if registry.process.poll() is not None:
            pytest.fail(f"docker-registry exited at start:\n{registry.log()}", pytrace=False)
        try:
            urllib.request.urlopen(f"http://{registry.host}/v2/", timeout=1).close()
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # the auth registry answers, and asks who we are
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            registry.stop()
            pytest.fail(f"docker-registry did not answer in {START_TIMEOUT}s:\n{registry.log()}")
        time.sleep(0.05)


def start_registry(folder: Path, docker_client, *, auth: bool) -> TestRegistry:
    """Start ``docker-registry`` on a free loopback port with its storage in ``folder``."""
    binary = _binary(REGISTRY_BINARY, "docker-registry")
    host = f"127.0.0.1:{_free_port()}"
    config = CONFIG.format(storage=folder / "storage", host=host, secret=secrets.token_hex(16))
    username = password = None
    if auth:
        username, password = "oneoff-test", secrets.token_urlsafe(18)
        (folder / "htpasswd").write_text(_htpasswd_line(username, password) + "\n")
        config += AUTH.format(htpasswd=folder / "htpasswd")
    (folder / "config.yml").write_text(config)
    with open(folder / "registry.log", "ab") as log:
        process = subprocess.Popen(
            [binary, "serve", str(folder / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    registry = TestRegistry(
        host=host,
        folder=folder,
        process=process,
        docker=docker_client,
        username=username,
        password=password,
    )
    _wait_ready(registry)
    return registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory, docker_client):
    """An open registry on loopback (see the module docstring)."""
    running = start_registry(tmp_path_factory.mktemp("registry"), docker_client, auth=False)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory, docker_client):
    """A registry on loopback that needs ``.username`` / ``.password`` to push or pull."""
    running = start_registry(tmp_path_factory.mktemp("auth-registry"), docker_client, auth=True)
    yield running
    running.stop()

"""Docker for builds: resolve (or pull) an image, run ``docker build``, tag the result.

Each build's image is tagged ``oneoff/<service-id>:<build-id>`` (``tag_for``), and the build
records the image **id**, so a later retag of the source never changes what a job runs.
"""

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import docker
import requests
from django.conf import settings
from docker.api import APIClient
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.images import Image
from docker.utils import parse_repository_tag

from services.builds.errors import BuildError, BuildStopped
from services.models import Build

if TYPE_CHECKING:
    from services.builds.executor import BuildLog


def tag_for(build: Build) -> str:
    return f"oneoff/{build.service_id}:{build.id}"


class _Response:
    """Captures the HTTP response of a streaming Docker call made in one thread, so another
    thread can close it (closing a ``docker build`` stream makes the engine stop the build)."""

    def __init__(self, api: APIClient) -> None:
        self.api = api
        self.thread: threading.Thread | None = None
        self.response: requests.Response | None = None

    def hook(
        self, response: requests.Response, *args: object, **kwargs: object
    ) -> requests.Response:
        if threading.current_thread() is self.thread:
            self.response = response
        return response

    def __enter__(self) -> Self:
        self.api.hooks["response"].append(self.hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self.api.hooks["response"].remove(self.hook)

    def close(self) -> None:
        response = self.response
        if response is None:
            return
        # The blocked reader only wakes up on a shutdown of the socket, not on a close. The path
        # runs through urllib3's private internals; one that is missing is the AttributeError.
        with contextlib.suppress(AttributeError, OSError):
            response.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            response.close()


def _id(image: Image) -> str:
    # docker types Model.id as optional; the engine always reports an image's id.
    assert image.id is not None
    return image.id


class ImageSteps:
    """The Docker steps of ``executor.BuildRun``, which provides ``build``, ``client``, ``log``,
    ``pump``, ``deadline`` and ``stop_reason``."""

    build: Build
    log: "BuildLog"
    pump: Callable[..., None]
    deadline: float
    stop_reason: str

    if TYPE_CHECKING:

        @property
        def client(self) -> docker.DockerClient: ...

    def from_image(self, ref: str) -> str:
        self.log.line(f"==> Resolving image {ref}", system=True)
        try:
            image = self.client.images.get(ref)
        except ImageNotFound:
            image = self.pull(ref)
        except APIError as exc:
            raise BuildError(f"{ref!r} is not a valid image reference: {explain(exc)}") from exc
        self.log.line(f"==> {ref} is image {image.id}", system=True)
        self.tag(_id(image))
        return _id(image)

    def pull(self, ref: str) -> Image:
        repository, tag = parse_repository_tag(ref)
        if not tag:
            tag = "latest"
        timeout = settings.BUILD_PULL_TIMEOUT
        self.log.line(f"==> {ref} is not on this Docker Engine; pulling it", system=True)
        errors: list[str] = []

        def consume(chunk: dict[str, Any]) -> None:
            if chunk.get("error"):
                errors.append(chunk["error"])
            elif chunk.get("status") and "progress" not in chunk:
                prefix = f"{chunk['id']}: " if chunk.get("id") else ""
                self.log.line(prefix + chunk["status"])

        api = self.client.api
        timed_out = (
            f"image {ref!r} is not on this Docker Engine and pulling it did not finish within "
            f"{timeout} seconds (BUILD_PULL_TIMEOUT)"
        )
        with _Response(api) as response:

            def produce() -> Iterator[dict[str, Any]]:
                # docker-py's pull() waits for the engine's first answer without any timeout;
                # this request bounds that wait (and any silence after it) by the pull timeout.
                response.thread = threading.current_thread()
                answer = api.post(
                    f"{api.base_url}/v{api.api_version}/images/create",
                    params={"fromImage": repository, "tag": tag},
                    stream=True,
                    timeout=(10, timeout),
                )
                if answer.status_code >= 400:
                    try:
                        errors.append(answer.json()["message"])
                    except (ValueError, KeyError, TypeError):
                        errors.append(f"{answer.status_code} {answer.reason}")
                    return
                for line in answer.iter_lines():
                    if line:
                        yield json.loads(line)

            try:
                self.pump(
                    produce,
                    consume,
                    response.close,
                    deadline=min(self.deadline, time.monotonic() + timeout),
                )
            except BuildStopped:
                if self.stop_reason == "timeout" and time.monotonic() < self.deadline:
                    raise BuildError(timed_out) from None
                raise
            except requests.Timeout:
                raise BuildError(timed_out) from None
            except (requests.RequestException, DockerException, OSError, ValueError) as exc:
                errors.append(explain(exc))
        try:
            if errors:
                raise ImageNotFound(errors[-1])
            return self.client.images.get(ref)
        except (ImageNotFound, NotFound) as exc:
            reason = errors[-1] if errors else explain(exc)
            raise BuildError(
                f"image {ref!r} is not on this Docker Engine and could not be pulled: {reason}"
            ) from exc

    def tag(self, image_id: str) -> None:
        repository, tag = tag_for(self.build).split(":")
        self.client.api.tag(image_id, repository, tag)

    def untag(self) -> None:
        with contextlib.suppress(DockerException, BuildError):
            self.client.images.remove(tag_for(self.build))

    def docker_build(self, context: Path, dockerfile: Path) -> str:
        build = self.build
        errors: list[str] = []
        image_ids: list[str] = []

        def consume(chunk: dict[str, Any]) -> None:
            if "stream" in chunk:
                self.log.write(chunk["stream"])
            elif chunk.get("error"):
                self.log.end_partial()
                errors.append(chunk["error"].strip())
                self.log.line(chunk["error"].strip())
            elif chunk.get("aux", {}).get("ID"):
                image_ids.append(chunk["aux"]["ID"])
            elif chunk.get("status") and "progress" not in chunk:
                prefix = f"{chunk['id']}: " if chunk.get("id") else ""
                self.log.line(prefix + chunk["status"])

        api = self.client.api
        with _Response(api) as response:

            def produce() -> Iterator[dict[str, Any]]:
                response.thread = threading.current_thread()
                return api.build(
                    path=str(context),
                    dockerfile=str(dockerfile),
                    tag=tag_for(build),
                    decode=True,
                    rm=True,
                    forcerm=True,
                    pull=False,
                    network_mode=settings.BUILD_NETWORK,
                    # No installation label: the builder prints its LABEL step in the
                    # build log, which tenants read.
                    labels={
                        "oneoff.service": build.service_id,
                        "oneoff.build": build.id,
                    },
                )

            try:
                self.pump(produce, consume, response.close)
            except (APIError, DockerException) as exc:
                raise BuildError(f"docker build failed: {explain(exc)}") from exc
        if errors:
            raise BuildError(f"docker build failed: {errors[-1]}")
        try:
            return _id(self.client.images.get(tag_for(build)))
        except ImageNotFound as exc:
            raise BuildError("docker build ended without producing an image") from exc


def explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()

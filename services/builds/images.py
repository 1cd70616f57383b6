"""Images for builds: resolve an allowed reference (``services.image_refs``), pull registry
images by digest, build Dockerfiles in the isolated builder (``builder``), tag the result.

Each build's image is tagged ``oneoff/<service-id>:<build-id>`` (``tag_for``), and the build
records the image **id**, so a later retag of the source never changes what a job runs.
"""

import contextlib
import json
import logging
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
from docker.auth import encode_header
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.images import Image
from docker.utils import parse_repository_tag

from services import image_refs
from services.builds.builder import BuildCgroup, Store
from services.builds.dockerfile import image_refs as image_refs_of
from services.builds.errors import BuildError, BuildStopped
from services.errors import Invalid
from services.image_refs import Source, base_images
from services.models import Build, BuildStatus

if TYPE_CHECKING:
    from services.builds.executor import BuildLog


logger = logging.getLogger(__name__)
# The registry a short name (busybox, library/python) is pulled from.
REGISTRY_HOSTS = {"docker.io": "registry-1.docker.io:443"}


def tag_for(build: Build) -> str:
    return f"oneoff/{build.service_id}:{build.id}"


def registry_repository(build: Build) -> str:
    """The build's repository in JOB_REGISTRY: one path per workspace, then the service."""
    return f"{settings.JOB_REGISTRY}/ws-{build.service.workspace_id}/{build.service_id}".lower()


def registry_auth() -> dict[str, str] | None:
    """docker-py's ``auth_config`` for JOB_REGISTRY (None when it needs no login)."""
    if not settings.JOB_REGISTRY_USERNAME:
        return None
    return {
        "username": settings.JOB_REGISTRY_USERNAME,
        "password": settings.JOB_REGISTRY_PASSWORD,
    }


def _scrub(text: str) -> str:
    """An engine or registry message with the job registry's password taken out."""
    password = settings.JOB_REGISTRY_PASSWORD
    return text.replace(password, "***") if password else text


def pull_job_image(client: docker.DockerClient, build: Build) -> str:
    """Make sure ``client``'s engine has ``build``'s job image, pulling it from JOB_REGISTRY by
    digest when the engine never built it; returns the reference a container is created from.
    A build without a registry image is taken from the engine as before (its image id)."""
    ref = build.job_image
    if not build.registry_image:
        return ref
    try:
        client.images.get(ref)
        return ref
    except ImageNotFound:
        pass
    repository, _, digest = ref.partition("@")
    try:
        client.api.pull(repository, tag=digest, auth_config=registry_auth())
        client.images.get(ref)
    except (DockerException, requests.RequestException) as exc:
        raise BuildError(
            f"the image of build {build.id} could not be pulled from the job registry: "
            + _scrub(explain(exc))
        ) from exc
    return ref


class _Response:
    """Captures the HTTP response of a streaming Docker call made in one thread, so another
    thread can close it (closing a pull's stream makes the engine stop the pull)."""

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
        image_id = self.resolve(self.source(ref, "image.imagePath"))
        self.log.line(f"==> {ref} is image {image_id}", system=True)
        self.tag(image_id)
        return image_id

    def source(self, ref: str, field: str) -> Source:
        try:
            return image_refs.classify(ref, self.build.service.workspace_id, field=field)
        except Invalid as exc:
            raise BuildError(f"image {ref!r} cannot be used: {exc.message}") from exc

    def resolve(self, source: Source) -> str:
        """The engine's id of an allowed image: a base image by its configured name, one of the
        workspace's builds by its recorded id, a registry image pulled and taken by digest."""
        if source.kind == "registry":
            return self.pull(source)
        name = source.image_id if source.kind == "own" else base_images()[source.name]
        try:
            return _id(self.client.images.get(name))
        except (ImageNotFound, NotFound) as exc:
            raise BuildError(
                f"image {source.ref!r} is no longer on this Docker Engine"
                + ("; ask the admin to restore the base image" if source.kind == "base" else "")
            ) from exc
        except APIError as exc:
            raise BuildError(f"image {source.ref!r} could not be read: {explain(exc)}") from exc

    def pull(self, source: Source) -> str:
        """Pull ``source`` from its registry (every time: the registry, not the engine's cache,
        decides whether this workspace may read it) and return the id of the digest it gave."""
        from services.egress import EgressRefused, allowed_addresses

        ref = source.ref
        repository, tag = parse_repository_tag(ref)
        if not tag:
            tag = "latest"
        host, _, port = REGISTRY_HOSTS.get(source.registry, source.registry).partition(":")
        try:
            allowed_addresses(host, int(port or 443))
        except EgressRefused as exc:
            raise BuildError(f"image {ref!r} could not be pulled: {exc.message}") from exc
        timeout = settings.BUILD_PULL_TIMEOUT
        self.log.line(f"==> Pulling {ref}", system=True)
        errors: list[str] = []
        digests: list[str] = []

        def consume(chunk: dict[str, Any]) -> None:
            if chunk.get("error"):
                errors.append(chunk["error"])
            elif chunk.get("status") and "progress" not in chunk:
                status = chunk["status"]
                if status.startswith("Digest: "):
                    digests.append(status.removeprefix("Digest: ").strip())
                prefix = f"{chunk['id']}: " if chunk.get("id") else ""
                self.log.line(prefix + status)

        api = self.client.api
        headers = {}
        credential = self.build.service.registry_credential
        if credential is not None:
            headers["X-Registry-Auth"] = encode_header(credential.auth_config())
        timed_out = f"image {ref!r} could not be pulled: {EgressRefused(host).message}"
        with _Response(api) as response:

            def produce() -> Iterator[dict[str, Any]]:
                # docker-py's pull() waits for the engine's first answer without any timeout;
                # this request bounds that wait (and any silence after it) by the pull timeout.
                response.thread = threading.current_thread()
                answer = api.post(
                    f"{api.base_url}/v{api.api_version}/images/create",
                    params={"fromImage": repository, "tag": tag},
                    headers=headers,
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
        if tag.startswith("sha256:"):
            digests.append(tag)
        if errors or not digests:
            logger.info("pull of %s failed: %s", ref, errors[-1] if errors else "no digest")
            raise BuildError(f"image {ref!r} could not be pulled: {_pull_failure(host, errors)}")
        try:
            image = self.client.images.get(f"{repository}@{digests[-1]}")
        except (ImageNotFound, NotFound, APIError) as exc:
            raise BuildError(f"image {ref!r} could not be pulled: {explain(exc)}") from exc
        self.log.line(f"==> {ref} is {repository}@{digests[-1]}", system=True)
        if self.build.image_ref:  # an image build: its artifact is the pulled digest
            Build.objects.filter(pk=self.build.pk).update(image_digest=digests[-1])
        return _id(image)

    def tag(self, image_id: str) -> None:
        repository, tag = tag_for(self.build).split(":")
        self.client.api.tag(image_id, repository, tag)

    def push_to_registry(self, image_id: str) -> str:
        """Push the built image to JOB_REGISTRY as ``ws-<workspace>/<service>:<build>`` and
        return its reference by the digest the registry gave (what jobs run)."""
        build = self.build
        repository = registry_repository(build)
        api = self.client.api
        self.log.line(
            f"==> Pushing the image to the job registry ({settings.JOB_REGISTRY})", system=True
        )
        try:
            api.tag(image_id, repository, build.id)
        except DockerException as exc:
            raise BuildError(
                f"the image could not be tagged for the job registry: {explain(exc)}"
            ) from exc
        errors: list[str] = []
        digests: list[str] = []

        def consume(chunk: dict[str, Any]) -> None:
            if chunk.get("error"):
                errors.append(_scrub(str(chunk["error"])))
            digest = (chunk.get("aux") or {}).get("Digest")
            if digest:
                digests.append(digest)

        try:
            with _Response(api) as response:

                def produce() -> Iterator[dict[str, Any]]:
                    response.thread = threading.current_thread()
                    yield from api.push(
                        repository,
                        tag=build.id,
                        auth_config=registry_auth(),
                        stream=True,
                        decode=True,
                    )

                try:
                    self.pump(
                        produce,
                        consume,
                        response.close,
                        deadline=min(
                            self.deadline, time.monotonic() + settings.JOB_REGISTRY_PUSH_TIMEOUT
                        ),
                    )
                except BuildStopped:
                    if self.stop_reason == "timeout" and time.monotonic() < self.deadline:
                        raise BuildError(
                            "the push to the job registry did not finish within "
                            f"{settings.JOB_REGISTRY_PUSH_TIMEOUT} seconds"
                        ) from None
                    raise
                except (requests.RequestException, DockerException, OSError, ValueError) as exc:
                    errors.append(_scrub(explain(exc)))
        finally:
            with contextlib.suppress(DockerException):
                api.remove_image(f"{repository}:{build.id}", noprune=True)
        if errors or not digests:
            logger.warning("push of build %s to the job registry failed: %s", build.id, errors)
            raise BuildError(
                "the image could not be pushed to the job registry: "
                + (errors[-1] if errors else "the registry gave no digest")
            )
        ref = f"{repository}@{digests[-1]}"
        self.log.line(f"==> Pushed: {ref}", system=True)
        return ref

    def untag(self) -> None:
        with contextlib.suppress(DockerException, BuildError):
            self.client.images.remove(tag_for(self.build))

    def isolated_build(self, context: Path, dockerfile: Path, workdir: Path) -> str:
        """Build ``dockerfile`` in the workspace's own builder (``builder``), then copy the image
        to the engine jobs run on as ``oneoff/<service>:<build>``."""
        build = self.build
        images = Store(build.service.workspace_id)
        for ref in image_refs_of(dockerfile.read_text(errors="replace")):
            images.seed(self.resolve(self.source(ref, "Dockerfile")), image_refs.qualified(ref))
        images.discard_stale(
            set(
                Build.objects.filter(
                    service__workspace_id=build.service.workspace_id, status=BuildStatus.BUILDING
                ).values_list("id", flat=True)
            )
        )
        store = images.for_build(build.id)
        cgroup = BuildCgroup(build.id)
        limited = cgroup.create(settings.BUILD_PIDS)
        self.log.line(
            f"==> Building in an isolated builder: {settings.BUILD_MEMORY_MB} MB memory, "
            f"{settings.BUILD_CPUS:g} CPU, "
            + (f"{settings.BUILD_PIDS} processes" if limited else "no process limit")
            + f", network {settings.BUILD_NETWORK}",
            system=True,
        )
        iidfile = workdir / "image-id"
        command = store.build_command(
            context=context,
            dockerfile=dockerfile,
            iidfile=iidfile,
            # No installation label: the builder prints its LABEL step in the build log,
            # which tenants read.
            labels={"oneoff.service": build.service_id, "oneoff.build": build.id},
            cgroup=cgroup if limited else None,
        )
        try:
            process = store.stream(command)
        except OSError as exc:
            raise BuildError(f"the builder could not start: {exc}") from exc

        def kill() -> None:
            process.kill()
            cgroup.kill()

        errors: list[str] = []

        def consume(line: str) -> None:
            if line.startswith("Error: "):
                errors.append(line.removeprefix("Error: ").strip())
            self.log.write(line)

        try:
            self.pump(process.lines, consume, kill)
            if process.returncode != 0 or not iidfile.exists():
                raise BuildError(
                    f"the Dockerfile build failed: {errors[-1]}"
                    if errors
                    else f"the Dockerfile build failed (exit {process.returncode})"
                )
            image_id = "sha256:" + iidfile.read_text().strip().removeprefix("sha256:")
            store.push(image_id, tag_for(build))
        finally:
            cgroup.remove()
            store.discard()
        try:
            return _id(self.client.images.get(tag_for(build)))
        except ImageNotFound as exc:
            raise BuildError("the build ended without producing an image") from exc


# What a registry answers, which a tenant may read; anything else is about the connection.
REGISTRY_ANSWERS = (
    "not found",
    "manifest unknown",
    "unauthorized",
    "denied",
    "no basic auth credentials",
    "authentication required",
)


def _pull_failure(host: str, errors: list[str]) -> str:
    """What a tenant is told of a failed pull: the registry's own answer when it gave one (not
    found, unauthorized), else egress's one wording, whatever happened to the connection (so a
    pull cannot tell a refused port from a silent or a TLS one)."""
    from services.egress import EgressRefused

    text = errors[-1] if errors else ""
    if any(answer in text.lower() for answer in REGISTRY_ANSWERS):
        return text
    return EgressRefused(host).message


def explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()

"""Which image references a workspace may build from, and where each one comes from.

Every workspace shares one Docker Engine, so a lookup on its image store (``images.get(ref)``)
would hand a workspace any image on it: another workspace's build by tag, by id or by an id
prefix as short as one character. So a reference is never looked up there as given. It is one of:

- a **base image** every workspace may use: the admin's list ``BUILD_BASE_IMAGES`` (the example's
  busybox is one), looked up on the engine by that exact name;
- one of the workspace's **own builds** (``oneoff/<service>:<build>`` of one of its services),
  taken by the image id its build recorded, never by the tag;
- a **registry image**, always pulled (so the registry, not the engine's cache, decides whether the
  workspace may read it) and then taken by the digest the pull reported.

Image ids, id prefixes, ``sha256:…`` and other names in Oneoff's own ``oneoff/`` namespace are
refused. ``classify`` answers for the API (``Invalid`` naming the field), for repository builds'
Dockerfiles and for image builds alike.
"""

import re
from dataclasses import dataclass
from typing import Literal

from django.conf import settings

from services.errors import Invalid

# What the engine would take as an image id or an id prefix: hex digits, with or without sha256:.
ID_LIKE = re.compile(r"^(sha256:)?[0-9a-fA-F]{1,64}$")
# A Docker reference: [registry[:port]/]path[:tag][@digest] (lower-case path components).
REFERENCE = re.compile(
    r"^(?:(?P<registry>[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
OWN_NAMESPACE = "oneoff/"
DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


@dataclass(frozen=True)
class Source:
    """Where an allowed reference comes from: ``base``, ``own`` (with the build's image id) or
    ``registry`` (with the registry's host and port, which egress rules check before a pull)."""

    ref: str
    kind: Literal["base", "own", "registry"]
    name: str  # the fully qualified name (docker.io/library/busybox:latest)
    image_id: str = ""
    registry: str = ""


def qualified(ref: str) -> str:
    """``busybox`` → ``docker.io/library/busybox:latest``, as the engine and buildah name it."""
    match = REFERENCE.match(ref)
    if match is None:
        return ref
    registry, path = match["registry"], match["path"]
    if registry in DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
    if registry is None or not _is_registry(registry):
        path = f"{registry}/{path}" if registry else path
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    name = f"{registry}/{path}"
    if match["digest"]:
        return f"{name}@{match['digest']}" if not match["tag"] else f"{name}:{match['tag']}"
    return f"{name}:{match['tag'] or 'latest'}"


def _is_registry(component: str) -> bool:
    # Docker's rule: the first component names a registry when it has a dot or a port, or is
    # "localhost".
    return "." in component or ":" in component or component == "localhost"


def base_images() -> dict[str, str]:
    """The admin's base images, by qualified name → the name as configured."""
    return {qualified(name): name for name in settings.BUILD_BASE_IMAGES}


def classify(ref: str, workspace_id: str, *, field: str = "image.imagePath") -> Source:
    """Where ``ref`` comes from for ``workspace_id``, or ``Invalid(field)`` saying why it may not
    be used."""
    from services.models import Build, BuildStatus  # models import this module's callers

    ref = ref.strip()
    if ID_LIKE.match(ref):
        raise Invalid(
            field,
            "an image id cannot be used; give a registry image (registry/name:tag or "
            "name@sha256:digest) or one of the base images",
        )
    match = REFERENCE.match(ref)
    if match is None:
        raise Invalid(field, f"{ref!r} is not an image reference (registry/name:tag)")
    name = qualified(ref)
    bases = base_images()
    if name in bases:
        return Source(ref=ref, kind="base", name=name)
    registry = match["registry"]
    if registry is None or not _is_registry(registry) or registry in DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
    # Builds are tagged oneoff/<service>:<build> on the engine, which the engine also calls
    # docker.io/oneoff/…: a pull of that name would retag another workspace's build.
    if name.startswith(f"{DOCKER_HUB}/{OWN_NAMESPACE}"):
        path = name.removeprefix(f"{DOCKER_HUB}/{OWN_NAMESPACE}")
        service_id, _, build_id = path.partition(":")
        image_id = (
            Build.objects.filter(
                id=build_id,
                service_id=service_id,
                service__workspace_id=workspace_id,
                service__deleted_at__isnull=True,
                status=BuildStatus.SUCCEEDED,
                image_removed_at__isnull=True,
            )
            .values_list("image_id", flat=True)
            .first()
        )
        if not image_id or match["digest"]:
            raise Invalid(
                field,
                f"{ref!r} is not a build of this workspace; images named oneoff/… are "
                "Oneoff's own builds",
            )
        return Source(ref=ref, kind="own", name=name, image_id=image_id)
    if _in_job_registry(registry):
        # Oneoff's job registry (JOB_REGISTRY) holds every workspace's builds: a workspace
        # reaches its own by their oneoff/<service>:<build> name, or by the exact digest
        # reference one of its builds recorded; never another path there.
        image_id = (
            Build.objects.filter(
                registry_image=ref,
                service__workspace_id=workspace_id,
                service__deleted_at__isnull=True,
                status=BuildStatus.SUCCEEDED,
            )
            .values_list("image_id", flat=True)
            .first()
        )
        if not image_id:
            raise Invalid(
                field,
                f"{ref!r} is in Oneoff's job registry, which holds builds; name one of this "
                "workspace's builds as oneoff/<service>:<build>",
            )
        return Source(ref=ref, kind="own", name=name, image_id=image_id)
    return Source(ref=ref, kind="registry", name=name, registry=registry)


def _in_job_registry(registry: str) -> bool:
    """Whether a reference's registry host is JOB_REGISTRY's (any port spelling of the host is
    refused too: the same registry may answer on several)."""
    if not settings.JOB_REGISTRY:
        return False
    job_host = settings.JOB_REGISTRY.split("/", 1)[0].lower()
    return registry.lower() == job_host or registry.lower().split(":")[0] == job_host.split(":")[0]

"""Which image references a workspace may use, and the images a Dockerfile names."""

import pytest

from services.builds.dockerfile import image_refs
from services.errors import Invalid
from services.image_refs import classify, qualified


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("library/python:3.12", "docker.io/library/python:3.12"),
        ("acme/api:1", "docker.io/acme/api:1"),
        ("127.0.0.1:5000/app:2", "127.0.0.1:5000/app:2"),
        ("registry.local/a/b", "registry.local/a/b:latest"),
        ("localhost/x:1", "localhost/x:1"),
    ],
)
def test_names_are_qualified_as_the_engine_names_them(ref, name):
    assert qualified(ref) == name


@pytest.mark.parametrize(
    "ref",
    [
        "b",
        "d85",
        "sha256:d850ec8f",
        "sha256:" + "a" * 64,
        "a" * 64,
        "Not A Ref",
        "oneoff/x:y",
        "docker.io/oneoff/x:y",
        "index.docker.io/oneoff/x:y",
    ],
)
def test_ids_prefixes_and_foreign_oneoff_names_are_refused(ref, db, workspace):
    with pytest.raises(Invalid) as error:
        classify(ref, workspace.id)
    assert error.value.field == "image.imagePath"


def test_base_images_and_registry_images_are_allowed(db, workspace, settings):
    settings.BUILD_BASE_IMAGES = ["oneoff/busybox:latest"]
    assert classify("oneoff/busybox:latest", workspace.id).kind == "base"
    assert classify("oneoff/busybox", workspace.id).kind == "base"
    source = classify("127.0.0.1:5000/app@sha256:" + "b" * 64, workspace.id)
    assert (source.kind, source.registry) == ("registry", "127.0.0.1:5000")
    assert classify("python:3.12", workspace.id).registry == "docker.io"


def test_a_workspace_may_name_its_own_builds_only(
    db, workspace, other_workspace, make_service, make_build
):
    mine = make_build(make_service(name="mine"), image_tag="x")
    tag = f"oneoff/{mine.service_id}:{mine.id}"
    source = classify(tag, workspace.id)
    assert (source.kind, source.image_id) == ("own", mine.image_id)
    with pytest.raises(Invalid):
        classify(tag, other_workspace.id)


def test_a_dockerfile_names_its_images_but_not_its_stages():
    text = """
    # syntax=docker/dockerfile:1
    ARG BASE=python:3.12
    FROM --platform=linux/amd64 ${BASE} AS build
    RUN --mount=type=cache,target=/c --mount=type=bind,from=tools:1,target=/t \\
        make
    FROM scratch
    COPY --from=build /app /app
    COPY --from=0 /x /x
    COPY --from=registry.local/assets:2 /a /a
    ADD --chown=1 x /x
    """
    assert image_refs(text) == ["python:3.12", "tools:1", "registry.local/assets:2"]
    # FROM never names a stage by number: digits there are an image (an id prefix).
    assert image_refs("FROM 1234\n") == ["1234"]


def test_a_number_with_no_such_stage_is_an_image_name_not_a_stage():
    """``--from=8466`` in a one-stage Dockerfile is an image (an all-digit id prefix of another
    workspace's build): the scan must classify it, not skip it as a stage number."""
    one_stage = "FROM base:1\nRUN --mount=type=bind,from=8466,target=/v cat /v/secret\n"
    assert image_refs(one_stage) == ["base:1", "8466"]
    assert image_refs("FROM base:1\nCOPY --from=1 /x /x\n") == ["base:1", "1"]
    assert image_refs("FROM base:1\nFROM base:2\nCOPY --from=1 /x /x\n") == ["base:1", "base:2"]

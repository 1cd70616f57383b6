"""Render's deploy shapes (``deploy``, ``deployWithCursor``, the create and rollback bodies,
the list's filters), and ``deploy_dict``, the one place a deploy's JSON is written."""

from datetime import datetime
from typing import Literal, get_args

from ninja import Field, Schema
from pydantic import ConfigDict

from api.fields import isoformat
from api.pagination import Page
from api.schemas.services import DATETIME
from services.models import Deploy, DeployTrigger

# Render's ``deployStatus``; Oneoff answers the first six (``services.deploys``), the others
# (pre-deploy commands, instance updates) never occur here but are accepted as filters.
DeployStatusName = Literal[
    "queued",
    "build_in_progress",
    "build_failed",
    "canceled",
    "live",
    "deactivated",
    "created",
    "update_in_progress",
    "update_failed",
    "pre_deploy_in_progress",
    "pre_deploy_failed",
]
TRIGGERS: list[str] = [t.value for t in DeployTrigger]
STATUS_NAMES: list[str] = list(get_args(DeployStatusName))


def deploy_dict(deploy: Deploy, status: str) -> dict:
    """Render's deploy (its ``build`` loaded), plus Oneoff's ``serviceId``, ``imageId`` (the
    image new jobs run while it is live) and, for a rollback, ``rollbackOf``."""
    build = deploy.build
    made = deploy.created_at
    started: datetime | None
    finished: datetime | None
    if deploy.reuses_build:  # live as it was made: nothing was built
        started, finished, updated = made, made, made
    else:
        started, finished = build.started_at, build.finished_at
        updated = max([made, *(t for t in (started, finished) if t is not None)])
    data: dict = {
        "id": deploy.id,
        "buildId": build.id,
        "serviceId": deploy.service_id,
        "status": status,
        "trigger": deploy.trigger,
        "createdAt": isoformat(made),
        "updatedAt": isoformat(updated),
    }
    if build.commit_id:
        commit = {"id": build.commit_id}
        if build.commit_message:
            commit["message"] = build.commit_message
        data["commit"] = commit
    if build.image_ref:
        image = {"ref": build.image_ref}
        if build.image_digest or build.image_id:
            image["sha"] = build.image_digest or build.image_id
        data["image"] = image
    if build.image_id:
        data["imageId"] = build.image_id
    if started is not None:
        data["startedAt"] = isoformat(started)
    if finished is not None:
        data["finishedAt"] = isoformat(finished)
    if deploy.rollback_of_id:
        data["rollbackOf"] = deploy.rollback_of_id
    return data


class DeployCommitOut(Schema):
    id: str
    message: str | None = None


class DeployImageOut(Schema):
    ref: str = Field(description="The image reference the build pulled.")
    sha: str | None = Field(None, description="The digest (or image id) it resolved to.")


class DeployOut(Schema):
    id: str = Field(pattern=r"^dep-[0-9a-v]{20}$")
    buildId: str = Field(description="The build this deploy ships (`bld-…`).")
    serviceId: str = Field(description="Oneoff: the deploy's service.")
    status: str = Field(json_schema_extra={"enum": list(STATUS_NAMES)})
    trigger: str = Field(json_schema_extra={"enum": list(TRIGGERS)})
    createdAt: str = Field(json_schema_extra=DATETIME)
    updatedAt: str = Field(json_schema_extra=DATETIME)
    startedAt: str | None = Field(None, json_schema_extra=DATETIME)
    finishedAt: str | None = Field(None, json_schema_extra=DATETIME)
    commit: DeployCommitOut | None = None
    image: DeployImageOut | None = Field(None, description="Image deploys only.")
    imageId: str | None = Field(
        None, description="Oneoff: the immutable image id new jobs run while it is live."
    )
    rollbackOf: str | None = Field(
        None, description="Oneoff: for a rollback, the earlier deploy it went back to."
    )


class DeployWithCursor(Schema):
    deploy: DeployOut
    cursor: str


class DeployCreateIn(Schema):
    """Render's create body. Oneoff builds without a cache (every build starts clean), so
    ``clearCache`` is honoured whatever it says."""

    buildId: str | None = Field(
        None,
        max_length=64,
        description="Deploy this successful build of the service again, without building.",
    )
    clearCache: Literal["clear", "do_not_clear"] | None = Field(
        None, description="Accepted: Oneoff's builds never reuse a cache."
    )
    commitId: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{4,64}$", description="A commit of a repo service."
    )
    imageUrl: str | None = Field(
        None, min_length=1, max_length=500, description="Another image for an image service."
    )
    deployMode: Literal["build_and_deploy", "deploy_only"] | None = Field(
        None,
        description="`deploy_only` deploys the current build again without building.",
    )

    model_config = ConfigDict(extra="forbid")


class RollbackIn(Schema):
    deployId: str = Field(max_length=64, description="The earlier deploy to roll back to.")

    model_config = ConfigDict(extra="forbid")


class DeployListQuery(Page):
    """Render's deploy filters; ``status`` repeated or comma-separated (``api.query``)."""

    status: list[DeployStatusName] | None = Field(None, description="Deploy statuses.")
    createdBefore: datetime | None = None
    createdAfter: datetime | None = None
    updatedBefore: datetime | None = None
    updatedAfter: datetime | None = None
    finishedBefore: datetime | None = None
    finishedAfter: datetime | None = None

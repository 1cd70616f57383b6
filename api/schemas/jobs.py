"""The job's JSON shape (Render's job object plus Oneoff's extensions) and the API's job schemas.

``job_dict`` is the one place the shape is written; every API answer with a job uses it.
"""

from datetime import datetime
from typing import Literal

from ninja import Field, Schema
from pydantic.json_schema import JsonDict

from api.fields import isoformat
from api.pagination import Page
from jobs.launch import ENV_VALUE_MAX, MAX_COMMAND_BYTES, MAX_ENV_OVERRIDES
from jobs.logs.retention import logs_expire_at
from jobs.models import Job, JobStatus
from jobs.usage import mb, usage_hint
from services.models import EnvVar

STATUSES = [s.value for s in JobStatus]
JobStatusName = Literal["pending", "running", "succeeded", "failed", "canceled"]
DATETIME: JsonDict = {"format": "date-time"}


def job_dict(job: Job) -> dict:
    """Render's job object: ``startedAt``/``finishedAt`` and the extensions appear only once set
    (no ``null``s). Timestamps are UTC with microseconds. Needs ``plan``, ``build``,
    ``env_snapshot``, ``workspace``, ``created_by`` and ``canceled_by`` loaded
    (``services.access.JOB_JOINS`` and ``with_relations``) to stay two queries per page (and one
    more per job with a ``usageHint``, for the next plan)."""
    data: dict[str, object] = {
        "id": job.id,
        "serviceId": job.service_id,
        "startCommand": job.start_command,
        "planId": job.plan_id,
        "createdAt": isoformat(job.created_at),
        "status": job.status,
    }
    if job.started_at:
        data["startedAt"] = isoformat(job.started_at)
    if job.finished_at:
        data["finishedAt"] = isoformat(job.finished_at)
    if job.exit_code is not None:
        data["exitCode"] = job.exit_code
    if job.reason:
        data["reason"] = job.reason
    data["buildId"] = job.build_id
    if job.build.image_id:
        data["imageId"] = job.build.image_id
    data["envDigest"] = job.env_snapshot.digest
    if job.cost is not None:
        data["cost"] = str(job.cost)
    if job.billed_seconds is not None:
        data["billedSeconds"] = job.billed_seconds
    if job.created_by:
        data["createdBy"] = job.created_by.email or job.created_by.username
    if job.canceled_by:
        data["canceledBy"] = job.canceled_by.email or job.canceled_by.username
    if job.timeout_seconds is not None:
        data["timeoutSeconds"] = job.timeout_seconds
    if job.env_override_keys:
        data["envVarOverrides"] = list(job.env_override_keys)  # keys only, for every reader
    if job.rerun_of_id:
        data["rerunOf"] = job.rerun_of_id
        data["exact"] = job.exact
    if job.status == JobStatus.PENDING and job.note:
        data["pendingReason"] = job.note
    if job.peak_memory_bytes is not None:
        data["peakMemoryMB"] = mb(job.peak_memory_bytes)
    if job.cpu_seconds is not None:
        data["cpuSeconds"] = round(job.cpu_seconds, 2)
    if hint := usage_hint(job):
        data["usageHint"] = hint
    if job.logs_purged_at:
        data["logsExpiredAt"] = isoformat(job.logs_purged_at)
    elif (expire_at := logs_expire_at(job, job.workspace.log_retention_days)) is not None:
        data["logsExpireAt"] = isoformat(expire_at)
    return data


class JobOut(Schema):
    id: str = Field(pattern=r"^job-[0-9a-v]{20}$", examples=["job-cph1rs3idesc73a2b2mg"])
    serviceId: str
    startCommand: str
    planId: str
    createdAt: str = Field(json_schema_extra=DATETIME)
    status: str = Field(json_schema_extra={"enum": [*STATUSES]})
    startedAt: str | None = Field(None, json_schema_extra=DATETIME)
    finishedAt: str | None = Field(None, json_schema_extra=DATETIME)
    exitCode: int | None = Field(None, description="Oneoff: the command's exit code.")
    reason: dict | None = Field(
        None,
        description="Oneoff: why it ended, e.g. {nonZeroExit: 1}, {oomKilled: {memoryLimit}}, "
        "{timedOutSeconds}, {canceledBy}, {startError}.",
    )
    buildId: str | None = Field(None, description="Oneoff: the build the job runs.")
    imageId: str | None = Field(None, description="Oneoff: the immutable image id it runs.")
    envDigest: str | None = Field(None, description="Oneoff: keyed hash of the env snapshot.")
    cost: str | None = Field(None, description="Oneoff: USD, a decimal string.")
    billedSeconds: int | None = None
    createdBy: str | None = None
    canceledBy: str | None = None
    timeoutSeconds: int | None = Field(
        None, description="Oneoff: the job's own timeout, when it was created with one."
    )
    envVarOverrides: list[str] | None = Field(
        None,
        description="Oneoff: the keys of the env vars the job was created with (`envVars`); "
        "their values are in its snapshot and never shown.",
    )
    rerunOf: str | None = Field(None, description="Oneoff: the job this one reran.")
    exact: bool | None = Field(
        None,
        description="Oneoff, on a rerun: whether it ran its original's image and env snapshot "
        "(`true`) or the latest ones (`false`).",
    )
    pendingReason: str | None = Field(
        None,
        description="Oneoff: why a pending job waits, e.g. for a slot of its service's "
        "`maxConcurrentJobs`.",
    )
    peakMemoryMB: float | None = Field(
        None,
        description="Oneoff: the most memory the job's container used (MB of 1,048,576 bytes: "
        "the plans' unit), from the kernel's accounting; absent until the first reading.",
    )
    cpuSeconds: float | None = Field(
        None, description="Oneoff: CPU time the job's container used so far, in seconds."
    )
    usageHint: str | None = Field(
        None,
        description="Oneoff: for a job killed for memory or peaking above 90% of its plan's "
        "memory, the next plan with more memory, e.g. `peaked at 498 of 512 MB: try Standard, "
        "2 GB` (or that none exists).",
    )
    logsExpireAt: str | None = Field(
        None,
        description="Oneoff: when a finished job's logs expire under the workspace's retention.",
        json_schema_extra=DATETIME,
    )
    logsExpiredAt: str | None = Field(
        None, description="Oneoff: when the job's logs were purged.", json_schema_extra=DATETIME
    )


class JobWithCursor(Schema):
    job: JobOut
    cursor: str


class EnvVarOverrideIn(Schema):
    key: str = Field(min_length=1, max_length=256, pattern=EnvVar.KEY_PATTERN)
    value: str = Field(max_length=ENV_VALUE_MAX)


class JobCreateIn(Schema):
    startCommand: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_COMMAND_BYTES,
        description="Run with /bin/sh -c; at most 64 KiB. Required, except in a rerun "
        "(`rerunOf`), where it defaults to the original's.",
    )
    planId: str | None = Field(
        None,
        max_length=64,
        description="Defaults to the service's plan (plan-srv-… / plan-crn-…), or in a rerun to "
        "the original's.",
    )
    timeoutSeconds: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="Oneoff: stop the job after this many seconds (it ends `failed` with "
        "`{timedOutSeconds}`); at most the server's JOB_MAX_RUNTIME. A rerun keeps the "
        "original's unless given.",
    )
    rerunOf: str | None = Field(
        None,
        max_length=64,
        description="Oneoff: rerun this job of the service. On the latest build and env by "
        "default, with the original's command, plan, timeout and env var overrides unless given.",
    )
    exact: bool | None = Field(
        None,
        strict=True,
        description="Oneoff, with `rerunOf`: run the original's image and env snapshot as they "
        "were, not the latest (no `envVars`). Refused (400) once cleanup removed that image; "
        "images are kept while their jobs' logs are.",
    )
    envVars: list[EnvVarOverrideIn] | None = Field(
        None,
        max_length=MAX_ENV_OVERRIDES,
        description="Oneoff: env vars added to, or replacing, the service's in this job's "
        "snapshot only (Render's `{key, value}` shape); the service's own env vars are "
        "untouched. Values are encrypted with the snapshot and never shown again.",
    )


class JobListQuery(Page):
    status: list[JobStatusName] | None = Field(
        None,
        description="Statuses, repeated (`status=failed&status=canceled`) or comma-separated: "
        + ", ".join(STATUSES)
        + ".",
    )
    createdBefore: datetime | None = Field(None, description="Created before (exclusive).")
    createdAfter: datetime | None = Field(None, description="Created at or after.")
    startedBefore: datetime | None = None
    startedAfter: datetime | None = None
    finishedBefore: datetime | None = None
    finishedAfter: datetime | None = None

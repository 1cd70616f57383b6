"""Render's logs API for jobs: ``GET /v1/logs`` with time-window pagination.

A client pages through a job's log by sending back ``nextStartTime`` (forward) or
``nextEndTime`` (backward) while ``hasMore`` is true, or tails it by asking again from
``nextStartTime``. The query logic is ``jobs.logs.read.query_logs``.
"""

from datetime import datetime, timedelta
from typing import Literal

from django.utils import timezone
from ninja import Field, Query, Router, Schema
from pydantic.json_schema import JsonDict

from api.auth import ApiRequest
from api.errors import ApiError, bad_request, errors
from api.fields import aware
from api.query import ListQuery
from api.responses import json_response
from jobs.logs.read import DEFAULT_LIMIT, MAX_LIMIT, LogQuery, query_logs
from jobs.models import Job

router = Router(tags=["Logs"])


class LogLabelOut(Schema):
    name: Literal["resource", "instance", "level", "type"]
    value: str


# Timestamps are strings with microseconds (RFC 3339): Django's JSON encoder would cut a datetime
# to milliseconds, and time-window paging needs the exact microsecond of each line.
TIMESTAMP: JsonDict = {"format": "date-time", "example": "2026-03-20T12:16:02.544199+00:00"}


class LogOut(Schema):
    id: str
    message: str
    timestamp: str = Field(json_schema_extra=TIMESTAMP)
    labels: list[LogLabelOut]


class LogsOut(Schema):
    hasMore: bool = Field(description="More lines match in the window: ask for the next page.")
    nextStartTime: str = Field(
        description="`startTime` of the next forward page.", json_schema_extra=TIMESTAMP
    )
    nextEndTime: str = Field(
        description="`endTime` of the next backward page.", json_schema_extra=TIMESTAMP
    )
    logs: list[LogOut]


class LogsQuery(ListQuery):
    keep_commas = frozenset({"text"})  # free text: a comma is part of it

    ownerId: str = Field(description="The workspace id (`tea-…`) of the API key.")
    resource: list[str] = Field(description="Job ids (`job-…`); repeat for several.")
    startTime: datetime | None = Field(None, description="Default: one hour before `endTime`.")
    endTime: datetime | None = Field(None, description="Default: now.")
    direction: Literal["backward", "forward"] = Field(
        "backward", description="`backward` (newest first, the default) or `forward`."
    )
    text: list[str] = Field([], description="Only lines containing each of these strings.")
    level: list[Literal["info", "error"]] = Field(
        [], description="`info` (stdout) and/or `error` (stderr)."
    )
    type: list[str] = Field([], description="Log types; jobs only have `app`.")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Lines per page (1-100).")


@router.get(
    "/logs",
    response={200: LogsOut, **errors(400, 404)},
    operation_id="list-logs",
    summary="List logs",
    description="A page of a job's log lines in the window `[startTime, endTime]`, with "
    "Render's time-window pagination (`hasMore`, `nextStartTime`, `nextEndTime`). Labels: "
    "`resource` (the job id), `instance`, `level` (`info` for stdout, `error` for stderr) and "
    "`type` (`app`).",
)
def list_logs(request: ApiRequest, filters: Query[LogsQuery]):
    workspace = request.auth.workspace
    if filters.ownerId != workspace.id:
        raise ApiError(404, "not_found", "owner not found")
    resources = [r for r in filters.resource if r]
    if not resources:
        raise bad_request("resource", "give at least one job id")
    jobs = list(Job.objects.filter(workspace=workspace, pk__in=resources))
    if len(jobs) != len(set(resources)):
        raise ApiError(404, "not_found", "resource not found")
    end = aware(filters.endTime) or timezone.now()
    start = aware(filters.startTime) or end - timedelta(hours=1)
    if start > end:
        raise bad_request("startTime", "must not be after endTime")
    if filters.type and "app" not in filters.type:
        return {
            "hasMore": False,
            "nextStartTime": start.isoformat(),
            "nextEndTime": end.isoformat(),
            "logs": [],
        }
    page = query_logs(
        LogQuery(
            jobs=jobs,
            start=start,
            end=end,
            direction=filters.direction,
            text=[t for t in filters.text if t],
            levels=list(filters.level),
            limit=filters.limit,
        )
    )
    # query_logs builds exactly LogsOut's shape from typed columns: rendered directly, without
    # validating every entry again (that took half of each request).
    return json_response(request, page)

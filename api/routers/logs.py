"""Render's logs API: ``GET /v1/logs`` with time-window pagination over job and build lines.

A client pages through the lines by sending back ``nextStartTime`` (forward) or
``nextEndTime`` (backward) while ``hasMore`` is true, or tails it by asking again from
``nextStartTime``. The query logic is ``jobs.logs.read.query_logs``.
"""

from datetime import datetime, timedelta
from typing import Literal

from django.conf import settings
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from pydantic.json_schema import JsonDict

from api.auth import ApiRequest
from api.errors import ApiError, ErrorOut, bad_request, errors
from api.fields import aware
from api.query import ListQuery
from api.responses import json_response
from jobs.logs.read import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    LogQuery,
    check,
    label_values,
    query_logs,
)
from jobs.logs.search import SearchTooSlow
from jobs.models import Job
from services.models import Build, Service

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


class LogFilters(ListQuery):
    """Render's log filters, shared by ``/v1/logs``, ``/v1/logs/values`` and
    ``/v1/logs/subscribe``. Its request-log filters (``host``, ``statusCode``, ``method``,
    ``path``) and workflow ones (``task``, ``taskRun``, ``sandbox``) are not declared, so they
    are a 400 naming them (``api.known_params``)."""

    keep_commas = frozenset({"text"})  # free text: a comma is part of it

    ownerId: str = Field(description="The workspace id (`tea-…`) of the API key.")
    resource: list[str] = Field(
        description="Job (`job-…`), service (`srv-…`, `crn-…`: its jobs' and builds' logs) or "
        "build (`bld-…`) ids; repeat for several."
    )
    startTime: datetime | None = Field(None, description="Default: one hour before `endTime`.")
    endTime: datetime | None = Field(None, description="Default: now.")
    direction: Literal["backward", "forward"] = Field(
        "backward", description="`backward` (newest first, the default) or `forward`."
    )
    text: list[str] = Field(
        [],
        description="Lines containing each of these: `*` matches any characters (`foo*bar`), "
        "`/…/` is a regular expression (RE2 syntax, e.g. `/(foo|bar)/`).",
    )
    level: list[str] = Field(
        [],
        description="`info` (a job's stdout, a build's output) or `error` (a job's stderr); "
        "any other level matches nothing. Wildcards and `/regex/` match the whole level.",
    )
    type: list[str] = Field([], description="`app` (job logs) and/or `build` (build logs).")
    instance: list[str] = Field(
        [], description="The job or build a line came from (its `instance` label)."
    )


class LogsQuery(LogFilters):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Lines per page (1-100).")


MAX_RESOURCES = 50


def log_query(request: ApiRequest, filters: LogFilters, limit: int = DEFAULT_LIMIT) -> LogQuery:
    """The ``LogQuery`` of Render's filters, its resources looked up in the key's workspace: a
    resource of another workspace is the same 404 as a missing one."""
    workspace = request.auth.workspace
    if filters.ownerId != workspace.id:
        raise ApiError(404, "not_found", "owner not found")
    resources = list(dict.fromkeys(r for r in filters.resource if r))
    if not resources:
        raise bad_request("resource", "give at least one job, service or build id")
    if len(resources) > MAX_RESOURCES:
        raise bad_request("resource", f"at most {MAX_RESOURCES} resources")
    job_ids = [r for r in resources if r.startswith("job-")]
    build_ids = [r for r in resources if r.startswith("bld-")]
    service_ids = [r for r in resources if r not in job_ids and r not in build_ids]
    jobs = list(Job.objects.filter(workspace=workspace, pk__in=job_ids))
    builds = list(Build.objects.filter(service__workspace=workspace, pk__in=build_ids))
    services = list(Service.objects.filter(workspace=workspace, pk__in=service_ids))
    if len(jobs) + len(builds) + len(services) != len(resources):
        raise ApiError(404, "not_found", "resource not found")
    end = aware(filters.endTime) or timezone.now()
    start = aware(filters.startTime) or end - timedelta(hours=1)
    if start > end:
        raise bad_request("startTime", "must not be after endTime")
    return LogQuery(
        jobs=jobs,
        builds=builds,
        services=services,
        start=start,
        end=end,
        direction=filters.direction,
        text=list(filters.text),
        levels=list(filters.level),
        types=list(filters.type),
        instances=list(filters.instance),
        limit=limit,
    )


def bounded(run):
    """``run()``, a query that ran too long a 400 naming ``text`` (the usual cause) or, without
    one, asking for a narrower window."""
    try:
        return run()
    except SearchTooSlow:
        raise bad_request(
            "text",
            f"the search was stopped after {settings.LOGS_QUERY_TIMEOUT:g} s: use a simpler "
            "expression or a narrower time window",
        ) from None


@router.get(
    "/logs",
    response={200: LogsOut, **errors(400, 404)},
    operation_id="list-logs",
    summary="List logs",
    description="A page of log lines in the window `[startTime, endTime]`, with Render's "
    "time-window pagination (`hasMore`, `nextStartTime`, `nextEndTime`). A `resource` is a "
    "job, a service (its jobs' and builds' lines) or a build. Labels: `resource` (the job, or "
    "a build line's service), `instance` (the job or the build), `level` (`info` for stdout and "
    "build output, `error` for stderr) and `type` (`app` or `build`).",
)
def list_logs(request: ApiRequest, filters: Query[LogsQuery]):
    q = log_query(request, filters, filters.limit)
    page = bounded(lambda: query_logs(q))
    # query_logs builds exactly LogsOut's shape from typed columns: rendered directly, without
    # validating every entry again (that took half of each request).
    return json_response(request, page)


@router.get(
    "/logs/subscribe",
    response={400: ErrorOut, **errors(404)},
    operation_id="subscribe-logs",
    summary="Subscribe to new logs",
    description="A WebSocket (connect with `Upgrade: websocket` and the API key in "
    "`Authorization`): each new line matching the filters, as it is stored, one JSON message "
    "in the shape of a `GET /v1/logs` line. Without `startTime` the tail starts at the "
    "connection; with `endTime` it closes once that has passed. Served by `api.logtail` (the "
    "web process's ASGI side); a plain GET is a 400.",
)
def subscribe_logs(request: ApiRequest, filters: Query[LogsQuery]):
    check(log_query(request, filters))
    raise ApiError(400, "bad_request", "a WebSocket endpoint: connect with Upgrade: websocket")


class LogValuesQuery(LogFilters):
    label: Literal["instance", "host", "statusCode", "method", "level", "type", "resource"] = Field(
        description="The label: `level`, `type`, `instance`, and (Oneoff) `resource`; "
        "`host`, `statusCode` and `method` (HTTP request logs) have no values here."
    )
    limit: int = Field(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Values at most (1-100, default 20)."
    )


@router.get(
    "/logs/values",
    response={200: list[str], **errors(400, 404)},
    operation_id="list-logs-values",
    summary="List log label values",
    description="The distinct values of a label among the lines matching the filters in the "
    "window (the same filters as `GET /v1/logs`), sorted, at most `limit`.",
)
def list_logs_values(request: ApiRequest, filters: Query[LogValuesQuery]):
    q = log_query(request, filters)
    return bounded(lambda: label_values(q, filters.label, filters.limit))

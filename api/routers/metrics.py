"""Render's metrics API for jobs: ``GET /v1/metrics/memory`` and ``GET /v1/metrics/cpu``.

``resource`` names jobs of the key's workspace (a job of another workspace, like a missing one,
is a 404); every reader of the workspace may ask, viewers too, as they may read the jobs. The
answer is Render's time-series collection: one series per job, labelled ``resource``, its values
``{timestamp, value}`` per ``resolutionSeconds`` bucket, from the points the runner sampled
(``jobs.usage``).
"""

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

from django.utils import timezone
from ninja import Field, Query, Router, Schema

from api.auth import ApiRequest
from api.errors import ApiError, bad_request, errors
from api.fields import aware, isoformat
from api.query import ListQuery
from jobs.models import Job, JobUsage
from jobs.usage import cpu_values, memory_values

router = Router(tags=["Metrics"])

MAX_RESOURCES = 30


class Aggregation(StrEnum):
    AVG = "AVG"
    MAX = "MAX"
    MIN = "MIN"


class MetricsQuery(ListQuery):
    resource: list[str] = Field(description="Job ids (`job-…`); repeat, or separate by commas.")
    startTime: datetime | None = Field(None, description="Oneoff default: the job's start.")
    endTime: datetime | None = Field(None, description="Oneoff default: its end, or now.")
    resolutionSeconds: float = Field(
        60,
        ge=1,
        le=86400,
        description="Seconds per value (default 60). Oneoff allows less than Render's 30: "
        "jobs are sampled every few seconds.",
    )


class CpuQuery(MetricsQuery):
    aggregationMethod: Aggregation = Field(
        Aggregation.AVG,
        description="How a bucket's samples make its value: the time-weighted mean (AVG), "
        "or the largest (MAX) or smallest (MIN) sample.",
    )


class LabelOut(Schema):
    field: str
    value: str


class ValueOut(Schema):
    timestamp: str = Field(json_schema_extra={"format": "date-time"})
    value: float


class TimeSeriesOut(Schema):
    labels: list[LabelOut]
    values: list[ValueOut]
    unit: str


def _jobs(request: ApiRequest, query: MetricsQuery) -> list[Job]:
    """The asked-for jobs of the key's workspace, in the order asked; any other is a 404."""
    ids = [i for i in dict.fromkeys(query.resource) if i]
    if not ids:
        raise bad_request("resource", "give at least one job id")
    if len(ids) > MAX_RESOURCES:
        raise bad_request("resource", f"at most {MAX_RESOURCES} jobs at once")
    found = Job.objects.filter(workspace=request.auth.workspace, pk__in=ids).in_bulk()
    if len(found) != len(ids):
        raise ApiError(404, "not_found", "resource not found")
    return [found[i] for i in ids]


def _window(job: Job, query: MetricsQuery) -> tuple[float, float]:
    start = aware(query.startTime, "startTime") or job.started_at or job.created_at
    end = aware(query.endTime, "endTime") or job.finished_at or timezone.now()
    if start > end:
        raise bad_request("startTime", "must not be after endTime")
    return start.timestamp(), end.timestamp()


def _series(job: Job, unit: str, values: list[tuple[float, float]]) -> dict:
    return {
        "labels": [{"field": "resource", "value": job.id}],
        "values": [
            {"timestamp": isoformat(datetime.fromtimestamp(at, UTC)), "value": value}
            for at, value in values
        ],
        "unit": unit,
    }


def _answer(
    request: ApiRequest,
    query: MetricsQuery,
    unit: str,
    values_of: Callable[[list, float, float], list[tuple[float, float]]],
) -> list[dict]:
    """One series per asked-for job: ``values_of(points, start, end)`` over its window."""
    jobs = _jobs(request, query)
    points = dict(JobUsage.objects.filter(job__in=jobs).values_list("job_id", "points"))
    return [
        _series(job, unit, values_of(points.get(job.id, []), *_window(job, query))) for job in jobs
    ]


@router.get(
    "/metrics/memory",
    response={200: list[TimeSeriesOut], **errors(400, 404)},
    operation_id="get-memory",
    summary="Get memory usage",
    description="Memory of jobs' containers over time (bytes): the most a bucket's samples "
    "saw. `resource` is a job id of the workspace.",
)
def memory(request: ApiRequest, query: Query[MetricsQuery]):
    return _answer(
        request,
        query,
        "bytes",
        lambda points, start, end: memory_values(points, start, end, query.resolutionSeconds),
    )


@router.get(
    "/metrics/cpu",
    response={200: list[TimeSeriesOut], **errors(400, 404)},
    operation_id="get-cpu",
    summary="Get CPU usage",
    description="CPU of jobs' containers over time, in cores (CPU seconds per second). "
    "`resource` is a job id of the workspace.",
)
def cpu(request: ApiRequest, query: Query[CpuQuery]):
    return _answer(
        request,
        query,
        "cpu",
        lambda points, start, end: cpu_values(
            points, start, end, query.resolutionSeconds, query.aggregationMethod.value
        ),
    )

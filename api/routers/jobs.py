"""The four jobs endpoints of Render's API: create, list, retrieve, cancel."""

import hashlib
import hmac
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from ninja import Query, Router, Status

from api.auth import ApiKeyAuth, ApiRequest, require_write
from api.errors import bad_request, errors
from api.fields import aware
from api.idempotency import idempotent
from api.pagination import decode_cursor, encode_cursor
from api.responses import json_response
from api.schemas.jobs import JobCreateIn, JobListQuery, JobOut, JobWithCursor, job_dict
from audit.trail import actor_of
from jobs.launch import cancel_job, create_job
from jobs.models import Job
from services.access import job_of, jobs_with_joins, service_in, with_relations
from services.keyset import keyset_queryset
from services.models import Service
from services.prepared import Prepared

log = logging.getLogger(__name__)

router = Router(tags=["One-Off Jobs"])

TIME_FILTERS = {
    "createdBefore": "created_at__lt",
    "createdAfter": "created_at__gte",
    "startedBefore": "started_at__lt",
    "startedAfter": "started_at__gte",
    "finishedBefore": "finished_at__lt",
    "finishedAfter": "finished_at__gte",
}


@router.post(
    "/services/{serviceId}/jobs",
    response={201: JobOut, **errors(400, 402, 403, 404, 409, 422)},
    auth=ApiKeyAuth(bucket="job_create"),
    exclude_none=True,
    operation_id="post-job",
    openapi_extra={
        "parameters": [
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": "Oneoff: the same key and body within 24 h answers the first "
                "job and starts nothing new; the same key with another body is a 422.",
            }
        ]
    },
    summary="Create job",
    description="Snapshots the service's latest successful build and env vars and starts the "
    "command. With an `Idempotency-Key` header, a retry with the same body within 24 h answers "
    "the first job and starts nothing (another body with that key: 422). Oneoff's opt-in "
    "overrides: `timeoutSeconds` and `envVars`. A job the workspace's monthly budget has no "
    "room for is a 402 naming the budget and what is spent.",
)
def create(request: ApiRequest, serviceId: str, payload: JobCreateIn):
    require_write(request)
    service = service_in(request.auth.workspace, serviceId)
    # Once the job's row is committed the job exists and will run (the sweep starts it if its
    # start message was not sent), so the answer is 201 whatever fails after the commit: the
    # re-read below (a database restarting) or the start message (a broker down). A 5xx there
    # would make a client without an Idempotency-Key create the job again.
    created: dict = {}

    def run():
        with transaction.atomic():
            # Registered before create_job's own hook (sending the start message), so it runs
            # first once the outermost transaction commits (with an Idempotency-Key, the one
            # that also stores the response).
            transaction.on_commit(lambda: created.update(committed=True))
            job = create_job(
                service,
                user=request.auth.user,
                actor=actor_of(request),
                **_launch_args(service, payload),
            )
            created["job"] = job
        return 201, job_dict(job_of(service, job.id))

    try:
        status, body = idempotent(request, f"jobs:{service.id}", _hashable(payload), run)
    except Exception:
        job = created.get("job")
        if job is None or not created.get("committed"):
            raise
        log.warning("job %s was created; answering it from memory", job.id, exc_info=True)
        job.workspace = request.auth.workspace  # what job_dict reads: no query
        return Status(201, job_dict(job))
    return Status(status, body)


def _launch_args(service: Service, payload: JobCreateIn) -> dict[str, Any]:
    """``create_job``'s arguments from the body. A rerun (``rerunOf``) starts from its original:
    its command, plan and timeout, and on latest its env var overrides with their values, each
    unless the body gives its own."""
    overrides = [(var.key, var.value) for var in payload.envVars or ()]
    args: dict[str, Any] = {
        "start_command": payload.startCommand,
        "plan_id": payload.planId,
        "timeout_seconds": payload.timeoutSeconds,
        "env_overrides": overrides,
        "exact": bool(payload.exact),
    }
    if payload.rerunOf is None:
        if payload.exact:
            raise bad_request("exact", "needs rerunOf: the job whose image and env it reruns")
        if payload.startCommand is None:
            raise bad_request("startCommand", "is required")
        return args
    original = service.jobs.filter(pk=payload.rerunOf).select_related("env_snapshot").first()
    if original is None:
        raise bad_request("rerunOf", "is not a job of this service")
    if payload.startCommand is None:
        args["start_command"] = original.start_command
    if payload.planId is None:
        args["plan_id"] = original.plan_id
    if payload.timeoutSeconds is None:
        args["timeout_seconds"] = original.timeout_seconds
    if payload.envVars is None and not payload.exact:
        args["env_overrides"] = list(original.override_values().items())
    args["rerun_of"] = original
    return args


def _hashable(payload: JobCreateIn) -> dict:
    """The body an Idempotency-Key's record hashes: env override values by a keyed hash (the
    record's plain SHA-256 must be no guessing oracle for a secret value)."""
    body = payload.model_dump()
    for var in body.get("envVars") or ():
        key = settings.ENV_DIGEST_KEY.encode()
        var["value"] = hmac.new(key, var["value"].encode(), hashlib.sha256).hexdigest()
    return body


@router.get(
    "/services/{serviceId}/jobs",
    response={200: list[JobWithCursor], **errors(400, 404)},
    exclude_none=True,
    operation_id="list-job",
    summary="List jobs",
    description="Newest first. Pass the last item's `cursor` for the next page; a page has "
    "fewer than `limit` items at the end. `…Before` bounds are exclusive, `…After` inclusive.",
)
def list_jobs(request: ApiRequest, serviceId: str, filters: Query[JobListQuery]):
    service = service_in(request.auth.workspace, serviceId)
    values: dict[str, Any] = {"service_id": service.pk}
    if filters.status:
        values["statuses"] = list(filters.status)
    times = tuple(name for name in TIME_FILTERS if getattr(filters, name) is not None)
    for name in times:
        values[name] = aware(getattr(filters, name), name)
    if filters.cursor:
        values["after_at"], values["after_id"] = decode_cursor(filters.cursor, "job")
    shape = (filters.limit, len(filters.status or ()), times, bool(filters.cursor))
    page = with_relations(_PAGE.run(shape, **values), service.workspace, service.plan)
    data = [{"job": job_dict(job), "cursor": encode_cursor(job.created_at, job.id)} for job in page]
    # Built to the schema by job_dict (the one place the shape is written; the tests check it
    # against the schema): rendered once, not validated again field by field.
    return json_response(request, data)


def _page(shape: tuple, service_id: str, **values: Any) -> QuerySet[Job]:
    """One page of a service's jobs (``list_jobs``), as ``paginate`` pages it."""
    limit, statuses, times, cursor = shape
    jobs = jobs_with_joins(Job.objects.filter(service_id=service_id))  # decrypts nothing
    if statuses:
        jobs = jobs.filter(status__in=values["statuses"])
    for name in times:
        jobs = jobs.filter(**{TIME_FILTERS[name]: values[name]})
    after = (values["after_at"], values["after_id"]) if cursor else None
    return keyset_queryset(jobs, after, limit)


# The API's hottest query, compiled once per shape (issue 20).
_PAGE = Prepared(_page)


@router.get(
    "/services/{serviceId}/jobs/{jobId}",
    response={200: JobOut, **errors(404)},
    exclude_none=True,
    operation_id="retrieve-job",
    summary="Retrieve job",
)
def retrieve(request: ApiRequest, serviceId: str, jobId: str):
    # A deleted service's jobs stay readable by id (jobs.launch.delete_service).
    service = service_in(request.auth.workspace, serviceId, deleted=True)
    return job_dict(job_of(service, jobId))


@router.post(
    "/services/{serviceId}/jobs/{jobId}/cancel",
    response={200: JobOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="cancel-job",
    summary="Cancel job",
    description="A pending job ends `canceled` at once; a running one is stopped (SIGTERM, then "
    "SIGKILL) and ends `canceled`. Canceling a canceled job returns it unchanged; a succeeded "
    "or failed job is a 400.",
)
def cancel(request: ApiRequest, serviceId: str, jobId: str):
    require_write(request)
    service = service_in(request.auth.workspace, serviceId)
    job = cancel_job(job_of(service, jobId), user=request.auth.user, actor=actor_of(request))
    return job_dict(job_of(service, job.id))

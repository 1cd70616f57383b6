"""A service's builds: list, start (from the service's source or an image), retrieve, cancel."""

from django.db import transaction
from ninja import Query, Router, Status

from api.auth import ApiRequest, require_write
from api.errors import bad_request, errors
from api.pagination import Page, encode_cursor, paginate
from api.schemas.services import (
    BuildCreateIn,
    BuildOut,
    BuildWithCursor,
    build_dict,
)
from audit.trail import actor_of, record_build
from services import image_refs
from services.access import build_of, service_in
from services.builds.queue import cancel_build, request_build
from services.models import Build

router = Router(tags=["Services"])


@router.get(
    "/services/{serviceId}/builds",
    response={200: list[BuildWithCursor], **errors(400, 404)},
    exclude_none=True,
    operation_id="list-builds",
    summary="List builds",
    tags=["Builds"],
)
def list_builds(request: ApiRequest, serviceId: str, page: Query[Page]):
    service = service_in(request.auth.workspace, serviceId)
    builds = paginate(Build.objects.filter(service=service), page, "bld")
    return [{"build": build_dict(b), "cursor": encode_cursor(b.created_at, b.id)} for b in builds]


@router.post(
    "/services/{serviceId}/builds",
    response={201: BuildOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="create-build",
    summary="Build service",
    description="Builds the configured source; `commitId` picks a commit of a repo service, "
    "`imageUrl` another image for an image service. The body may be empty.",
    tags=["Builds"],
)
def create_build(request: ApiRequest, serviceId: str, payload: BuildCreateIn | None = None):
    require_write(request)
    service = service_in(request.auth.workspace, serviceId)
    commit_id = payload.commitId if payload else None
    image_url = payload.imageUrl if payload else None
    if commit_id and not service.repo_url:
        raise bad_request("commitId", "this service builds from an image, not a repo")
    if image_url and not service.image_ref:
        raise bad_request("imageUrl", "this service builds from a repo; use commitId")
    if image_url:
        image_refs.classify(image_url, service.workspace_id, field="imageUrl")
    with transaction.atomic():
        build = request_build(
            service, commit_id=commit_id or "", image_ref=image_url or "", user=request.auth.user
        )
        record_build(actor_of(request), build)
    return Status(201, build_dict(build))


@router.get(
    "/services/{serviceId}/builds/{buildId}",
    response={200: BuildOut, **errors(404)},
    exclude_none=True,
    operation_id="retrieve-build",
    summary="Retrieve build",
    tags=["Builds"],
)
def retrieve_build(request: ApiRequest, serviceId: str, buildId: str):
    service = service_in(request.auth.workspace, serviceId)
    return build_dict(build_of(service, buildId))


@router.post(
    "/services/{serviceId}/builds/{buildId}/cancel",
    response={200: BuildOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="cancel-build",
    summary="Cancel build",
    description="A queued build ends `canceled` at once; a running one is stopped. Canceling a "
    "canceled build returns it unchanged; a succeeded or failed build is a 400.",
    tags=["Builds"],
)
def cancel_build_view(request: ApiRequest, serviceId: str, buildId: str):
    require_write(request)
    service = service_in(request.auth.workspace, serviceId)
    build = cancel_build(build_of(service, buildId), user=request.auth.user)
    return build_dict(build)

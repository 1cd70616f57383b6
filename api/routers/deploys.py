"""A service's deploys in Render's shapes: list, create, retrieve, cancel, and rollback.

A deploy is a build plus making it what new jobs run (``services.deploys``). ``/builds`` stays
as Oneoff's own view of the same builds (``api.routers.builds``)."""

from django.db import transaction
from ninja import Query, Router, Status

from api.auth import ApiRequest, require_write
from api.errors import ApiError, bad_request, errors
from api.fields import aware
from api.pagination import encode_cursor, paginate
from api.schemas.deploys import (
    DeployCreateIn,
    DeployListQuery,
    DeployOut,
    DeployWithCursor,
    RollbackIn,
    deploy_dict,
)
from audit.trail import actor_of, record
from services import deploys, image_refs
from services.access import service_in
from services.builds.queue import cancel_build, request_deploy
from services.models import Deploy, DeployTrigger, Service

router = Router(tags=["Deploys"])

TIME_FILTERS = {
    "createdBefore": "created_at__lt",
    "createdAfter": "created_at__gte",
    "updatedBefore": "updated__lt",
    "updatedAfter": "updated__gte",
    "finishedBefore": "finished__lt",
    "finishedAfter": "finished__gte",
}


def _deploy_of(service: Service, deploy_id: str) -> Deploy:
    deploy = Deploy.objects.filter(service=service, pk=deploy_id).select_related("build").first()
    if deploy is None:
        raise ApiError(404, "not_found", "deploy not found")
    return deploy


def _answer(service: Service, deploy: Deploy) -> dict:
    return deploy_dict(deploy, deploys.status_of(deploy, deploys.live_id(service)))


@router.get(
    "/services/{serviceId}/deploys",
    response={200: list[DeployWithCursor], **errors(400, 404)},
    exclude_none=True,
    operation_id="list-deploys",
    summary="List deploys",
)
def list_deploys(request: ApiRequest, serviceId: str, filters: Query[DeployListQuery]):
    service = service_in(request.auth.workspace, serviceId)
    found = deploys.deploys_of(service, deploys.live_id(service))
    if filters.status:
        found = found.filter(**{"status__in": filters.status})  # the computed status
    for name, lookup in TIME_FILTERS.items():
        value = getattr(filters, name)
        if value is not None:
            found = found.filter(**{lookup: aware(value, name)})
    return [
        {"deploy": deploy_dict(d, d.status), "cursor": encode_cursor(d.created_at, d.id)}
        for d in paginate(found, filters, "dep")
    ]


@router.post(
    "/services/{serviceId}/deploys",
    response={201: DeployOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="create-deploy",
    summary="Trigger deploy",
    description="Builds the service (a repo service at `commitId` if given, an image service "
    "from `imageUrl` if given) and makes the build what new jobs run once it succeeded. "
    "`buildId` (or `deployMode: deploy_only`, the current build) deploys an existing "
    "successful build at once, without building. `clearCache` is accepted: builds never reuse "
    "a cache. The body may be empty.",
)
def create_deploy(request: ApiRequest, serviceId: str, payload: DeployCreateIn | None = None):
    require_write(request)
    service = service_in(request.auth.workspace, serviceId)
    body = payload or DeployCreateIn.model_validate({})
    given = body.model_fields_set
    if body.buildId is not None or body.deployMode == "deploy_only":
        deploy = _deploy_existing(request, service, body, given)
    else:
        if body.commitId and not service.repo_url:
            raise bad_request("commitId", "this service deploys an image, not a repo; use imageUrl")
        if body.imageUrl and not service.image_ref:
            raise bad_request("imageUrl", "this service builds from a repo; use commitId")
        if body.imageUrl:
            image_refs.classify(body.imageUrl, service.workspace_id, field="imageUrl")
        with transaction.atomic():
            deploy = request_deploy(
                service,
                commit_id=body.commitId or "",
                image_ref=body.imageUrl or "",
                user=request.auth.user,
                trigger=DeployTrigger.API,
            )
            build = deploy.build
            details = {"service": service.id, "deploy": deploy.id}
            if build.commit_id:
                details["commit"] = build.commit_id
            if build.image_ref:
                details["image"] = build.image_ref
            record(
                actor_of(request),
                service.workspace_id,
                "build.trigger",
                target_type="build",
                target_id=build.id,
                metadata=details,
            )
    return Status(201, _answer(service, deploy))


def _deploy_existing(request: ApiRequest, service: Service, body: DeployCreateIn, given) -> Deploy:
    """Render's ``buildId`` or ``deployMode: deploy_only``: a deploy of an existing build."""
    if body.buildId is not None:
        for name in ("commitId", "imageUrl", "deployMode"):
            if name in given and getattr(body, name) is not None:
                raise bad_request(name, "cannot be combined with buildId")
        build = service.builds.filter(pk=body.buildId).first()
        if build is None:
            raise bad_request("buildId", f"no build {body.buildId!r} of this service")
    else:
        for name in ("commitId", "imageUrl"):
            if getattr(body, name) is not None:
                raise bad_request(name, "cannot be combined with deployMode deploy_only")
        if body.clearCache == "clear":
            raise bad_request("clearCache", "cannot be combined with deployMode deploy_only")
        build = service.current_build()
        if build is None:
            raise bad_request("deployMode", "the service has no successful build to deploy")
    with transaction.atomic():
        deploy = deploys.redeploy(service, build, trigger=DeployTrigger.API, user=request.auth.user)
        _record_deploy(request, service, deploy)
    return deploy


def _record_deploy(request: ApiRequest, service: Service, deploy: Deploy) -> None:
    details = {"service": service.id, "build": deploy.build_id, "trigger": deploy.trigger}
    if deploy.rollback_of_id:
        details["rollbackOf"] = deploy.rollback_of_id
    record(
        actor_of(request),
        service.workspace_id,
        "deploy.create",
        target_type="deploy",
        target_id=deploy.id,
        metadata=details,
    )


@router.get(
    "/services/{serviceId}/deploys/{deployId}",
    response={200: DeployOut, **errors(404)},
    exclude_none=True,
    operation_id="retrieve-deploy",
    summary="Retrieve deploy",
)
def retrieve_deploy(request: ApiRequest, serviceId: str, deployId: str):
    service = service_in(request.auth.workspace, serviceId)
    return _answer(service, _deploy_of(service, deployId))


@router.post(
    "/services/{serviceId}/deploys/{deployId}/cancel",
    response={200: DeployOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="cancel-deploy",
    summary="Cancel deploy",
    description="A queued deploy ends `canceled` at once; one building is stopped (it reads "
    "`build_in_progress` until the builder stopped, within a second). Canceling a canceled "
    "deploy returns it unchanged; a finished one is a 400.",
)
def cancel_deploy(request: ApiRequest, serviceId: str, deployId: str):
    require_write(request)
    service = service_in(request.auth.workspace, serviceId)
    deploy = _deploy_of(service, deployId)
    status = deploys.status_of(deploy, deploys.live_id(service))
    if status not in (*deploys.IN_PROGRESS, "canceled"):
        raise bad_request(
            "deployId", f"deploy {deploy.id} is {status}; only a deploy in progress can be canceled"
        )
    if status != "canceled":
        cancel_build(deploy.build, user=request.auth.user)
    return _answer(service, _deploy_of(service, deploy.id))


@router.post(
    "/services/{serviceId}/rollback",
    response={201: DeployOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="rollback-deploy",
    summary="Roll back deploy",
    description="A new deploy (trigger `rollback`) of an earlier successful deploy's build, "
    "live at once: new jobs run that build's image; jobs already created keep theirs. A later "
    "deploy takes over again once it succeeds.",
)
def rollback_deploy(request: ApiRequest, serviceId: str, payload: RollbackIn):
    require_write(request)
    service = service_in(request.auth.workspace, serviceId)
    with transaction.atomic():
        deploy = deploys.rollback(service, payload.deployId, user=request.auth.user)
        _record_deploy(request, service, deploy)
    return Status(201, _answer(service, _deploy_of(service, deploy.id)))

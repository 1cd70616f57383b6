"""Services in Render's shapes: list, create (with its first build), retrieve, update, suspend."""

from django.conf import settings
from django.db import IntegrityError, transaction
from ninja import Query, Router, Status

from api.auth import ApiRequest, require_admin
from api.errors import bad_request, errors
from api.fields import aware
from api.pagination import encode_cursor, paginate
from api.responses import empty_response
from api.routers.env_vars import check_env_keys, env_value
from api.schemas.services import (
    ServiceCreatedOut,
    ServiceCreateIn,
    ServiceDetailsIn,
    ServiceListQuery,
    ServiceOut,
    ServiceUpdateIn,
    ServiceWithCursor,
    find_plan,
    plan_choices,
    service_dict,
)
from audit.trail import actor_of, record
from jobs.runner import set_concurrency_limit
from services import image_refs
from services.access import service_in
from services.builds.queue import request_build
from services.models import EnvVar, Service, ServiceType, Workspace
from services.repo_urls import MASK, split_credential
from services.transitions import transition

router = Router(tags=["Services"])


TIME_FILTERS = {
    "createdBefore": "created_at__lt",
    "createdAfter": "created_at__gte",
    "updatedBefore": "updated_at__lt",
    "updatedAfter": "updated_at__gte",
}


@router.get(
    "/services",
    response={200: list[ServiceWithCursor], **errors(400)},
    exclude_none=True,
    operation_id="list-services",
    summary="List services",
)
def list_services(request: ApiRequest, filters: Query[ServiceListQuery]):
    services = request.auth.workspace.services.select_related("plan", "registry_credential").defer(
        "registry_credential__auth_token"
    )
    if filters.name:
        services = services.filter(name__in=filters.name)
    if filters.type:
        services = services.filter(type__in=filters.type)
    if filters.env:  # a service's runtime is "image" (image_ref set) or "docker"
        if "image" not in filters.env:
            services = services.filter(image_ref="")
        if "docker" not in filters.env:
            services = services.exclude(image_ref="")
    if filters.region and settings.REGION not in filters.region:
        services = services.none()
    if filters.suspended:
        services = services.filter(suspended__in=[v == "suspended" for v in filters.suspended])
    if filters.ownerId:
        services = services.filter(workspace_id__in=filters.ownerId)
    for name, lookup in TIME_FILTERS.items():
        value = getattr(filters, name)
        if value is not None:
            services = services.filter(**{lookup: aware(value, name)})
    return [
        {"service": service_dict(s), "cursor": encode_cursor(s.created_at, s.id)}
        for s in paginate(services, filters, ("srv", "crn"))
    ]


def _source_fields(body, service: Service | None, workspace_id: str) -> dict:
    """The build source: an image, or a repository (+ branch, Dockerfile and context)."""
    image = body.image.imagePath if body.image else None
    if image and body.repo:
        raise bad_request("image", "give either image.imagePath or repo, not both")
    fields: dict = {}
    if image:
        image_refs.classify(image, workspace_id)  # a 400 for an image this workspace can't use
        fields.update(image_ref=image, repo_url="", repo_credential="", branch="")
    elif body.repo:
        url, credential = split_credential(body.repo)
        if credential == MASK and service is not None and url == service.repo_url:
            credential = service.repo_credential  # the masked URL as read back: keep it
        fields.update(repo_url=url, repo_credential=credential, image_ref="")
        fields["branch"] = body.branch or (service.branch if service else "") or "main"
    elif body.branch:
        if service is None or not service.repo_url:
            raise bad_request("branch", "only a service built from a repo has a branch")
        fields["branch"] = body.branch
    elif service is None:
        raise bad_request("repo", "a service needs a source: image.imagePath or repo")
    details = body.serviceDetails.envSpecificDetails if body.serviceDetails else None
    if details and (details.dockerfilePath or details.dockerContext):
        if not (fields.get("repo_url") or (service and service.repo_url and not image)):
            raise bad_request(
                "serviceDetails.envSpecificDetails",
                "dockerfilePath and dockerContext apply only to a service built from a repo",
            )
        if details.dockerfilePath:
            fields["dockerfile_path"] = details.dockerfilePath
        if details.dockerContext:
            fields["docker_context"] = details.dockerContext
    return fields


def _credential_fields(body, service: Service | None, workspace: Workspace) -> dict:
    """The registry credential for pulling ``image.imagePath``: one of the workspace's own,
    by ``image.registryCredentialId`` (null or "" for none; left out of an update, the
    service keeps its own). A repository source has none."""
    image = body.image
    if image is None:
        return {"registry_credential": None} if body.repo else {}
    if image.ownerId is not None and image.ownerId != workspace.id:
        raise bad_request("image.ownerId", "must be the id of the service's owner")
    if "registryCredentialId" not in image.model_fields_set:
        return {}
    if not image.registryCredentialId:
        return {"registry_credential": None}
    credential = (
        workspace.registry_credentials.defer("auth_token")
        .filter(pk=image.registryCredentialId)
        .first()
    )
    if credential is None:  # missing or another workspace's: the same answer
        raise bad_request(
            "image.registryCredentialId",
            "unknown registry credential; use an id from GET /v1/registrycredentials",
        )
    return {"registry_credential": credential}


def _plan(service_type: str, value: str):
    plan = find_plan(service_type, value)
    if plan is None:
        raise bad_request(
            "serviceDetails.plan",
            f"unknown plan {value!r} for a {service_type}; valid plans: "
            f"{plan_choices(service_type)}",
        )
    return plan


@router.post(
    "/services",
    response={201: ServiceCreatedOut, **errors(400, 403)},
    exclude_none=True,
    operation_id="create-service",
    summary="Create service",
    description="Render's create body. Starts the service's first build (`buildId`).",
)
def create_service(request: ApiRequest, payload: ServiceCreateIn):
    require_admin(request)
    workspace = request.auth.workspace
    if payload.ownerId != workspace.id:
        raise bad_request("ownerId", "unknown owner; use an id from GET /v1/owners")
    details = payload.serviceDetails
    plan = _plan(payload.type, details.plan if details and details.plan else "starter")
    fields = _source_fields(payload, None, workspace.id)
    fields.update(_credential_fields(payload, None, workspace))
    fields.update(_detail_fields(payload.type, details))
    check_env_keys(payload.envVars, "envVars")
    if request.auth.workspace.services.filter(name=payload.name).exists():
        raise bad_request("name", f"a service named {payload.name!r} already exists")
    try:
        with transaction.atomic():
            service = Service.objects.create(
                workspace=workspace,
                name=payload.name,
                type=payload.type,
                plan=plan,
                root_dir=payload.rootDir or "",
                auto_deploy=payload.autoDeploy == "yes",
                mask_secrets=payload.maskSecrets is not False,
                **fields,
            )
            EnvVar.objects.bulk_create(
                EnvVar(
                    service=service,
                    key=var.key,
                    value=env_value(var.value),
                    secret=bool(var.secret),
                )
                for var in payload.envVars
            )
            build = request_build(service, user=request.auth.user)
            # One entry: the first build is part of the create (its id in the details).
            record(
                actor_of(request),
                workspace,
                "service.create",
                target_type="service",
                target_id=service.id,
                metadata={
                    "name": service.name,
                    "type": service.type,
                    "plan": plan.id,
                    "build": build.id,
                    "envVarKeys": [var.key for var in payload.envVars],
                },
            )
    except IntegrityError as exc:  # a concurrent create took the name
        raise bad_request("name", f"a service named {payload.name!r} already exists") from exc
    service = service_in(request.auth.workspace, service.id)
    return Status(201, {"service": service_dict(service), "buildId": build.id})


@router.get(
    "/services/{serviceId}",
    response={200: ServiceOut, **errors(404)},
    exclude_none=True,
    operation_id="retrieve-service",
    summary="Retrieve service",
)
def retrieve_service(request: ApiRequest, serviceId: str):
    return service_dict(service_in(request.auth.workspace, serviceId))


@router.patch(
    "/services/{serviceId}",
    response={200: ServiceOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="update-service",
    summary="Update service",
)
def update_service(request: ApiRequest, serviceId: str, payload: ServiceUpdateIn):
    require_admin(request)
    service = service_in(request.auth.workspace, serviceId)
    fields = _source_fields(payload, service, service.workspace_id)
    fields.update(_credential_fields(payload, service, request.auth.workspace))
    if payload.name is not None and payload.name != service.name:
        if request.auth.workspace.services.filter(name=payload.name).exists():
            raise bad_request("name", f"a service named {payload.name!r} already exists")
        fields["name"] = payload.name
    if payload.rootDir is not None:
        fields["root_dir"] = payload.rootDir
    if payload.autoDeploy is not None:
        fields["auto_deploy"] = payload.autoDeploy == "yes"
    if payload.maskSecrets is not None:
        fields["mask_secrets"] = payload.maskSecrets
    details = payload.serviceDetails
    if details and details.plan:
        fields["plan"] = _plan(service.type, details.plan)
    fields.update(_detail_fields(service.type, details))
    for name, value in fields.items():
        setattr(service, name, value)
    changed = sorted(name for name in fields if name != "repo_credential")
    try:
        with transaction.atomic():
            if "maxConcurrentJobs" in payload.model_fields_set:
                set_concurrency_limit(service, payload.maxConcurrentJobs)
                changed.append("max_concurrent_jobs")
            service.save()
            record(
                actor_of(request),
                service.workspace_id,
                "service.update",
                target_type="service",
                target_id=service.id,
                metadata={"name": service.name, "fields": changed},
            )
    except IntegrityError as exc:
        raise bad_request("name", f"a service named {payload.name!r} already exists") from exc
    return service_dict(service_in(request.auth.workspace, service.id))


def _detail_fields(service_type: str, details: ServiceDetailsIn | None) -> dict:
    """The model fields ``serviceDetails`` sets besides the plan: the disk, and a cron job's
    schedule (recorded, not run: Oneoff runs one-off jobs only)."""
    fields: dict = {}
    if details is None:
        return fields
    if details.disk:
        fields.update(
            disk_name=details.disk.name,
            disk_mount_path=details.disk.mountPath,
            disk_size_gb=details.disk.sizeGB,
        )
    if details.schedule is not None:
        if service_type != ServiceType.CRON_JOB:
            raise bad_request("serviceDetails.schedule", "only cron jobs have a schedule")
        fields["schedule"] = details.schedule
    return fields


def _set_suspended(request: ApiRequest, service_id: str, suspended: bool):
    require_admin(request)
    service = service_in(request.auth.workspace, service_id)
    # Jobs keep running: a job never depends on its service after it was created.
    # Only a real change is one (service_suspended / service_resumed webhooks).
    with transaction.atomic():
        changed = transition(
            Service.objects.filter(pk=service.pk, suspended=not suspended), suspended=suspended
        )
        if changed:
            record(
                actor_of(request),
                service.workspace_id,
                "service.suspend" if suspended else "service.resume",
                target_type="service",
                target_id=service.id,
                metadata={"name": service.name},
            )
    return empty_response(request, 202)


@router.post(
    "/services/{serviceId}/suspend",
    response={202: None, **errors(403, 404)},
    operation_id="suspend-service",
    summary="Suspend service",
    description="Running jobs are not affected.",
)
def suspend_service(request: ApiRequest, serviceId: str):
    return _set_suspended(request, serviceId, True)


@router.post(
    "/services/{serviceId}/resume",
    response={202: None, **errors(403, 404)},
    operation_id="resume-service",
    summary="Resume service",
)
def resume_service(request: ApiRequest, serviceId: str):
    return _set_suspended(request, serviceId, False)

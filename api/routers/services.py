"""Owners (workspaces), services, env vars and builds, in Render's shapes."""

import base64
import binascii
import re
import secrets

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from ninja import Query, Router, Status

from api.auth import require_admin, require_write
from api.errors import bad_request, errors, not_found
from api.fields import aware
from api.pagination import Page, encode_cursor, paginate, unb64
from api.responses import empty_response
from api.schemas.services import (
    BuildCreateIn,
    BuildOut,
    BuildWithCursor,
    EnvVarIn,
    EnvVarListQuery,
    EnvVarOut,
    EnvVarValueIn,
    EnvVarWithCursor,
    OwnerOut,
    OwnerWithCursor,
    ServiceCreatedOut,
    ServiceCreateIn,
    ServiceListQuery,
    ServiceOut,
    ServiceUpdateIn,
    ServiceWithCursor,
    build_dict,
    env_var_dict,
    find_plan,
    owner_dict,
    plan_choices,
    service_dict,
)
from services.access import build_of, service_in
from services.builds.queue import cancel_build, request_build
from services.models import Build, EnvVar, Role, Service

owners_router = Router(tags=["Workspaces"])
router = Router(tags=["Services"])


# Owners --------------------------------------------------------------------------------------


@owners_router.get(
    "/owners",
    response={200: list[OwnerWithCursor], **errors(400)},
    operation_id="list-owners",
    summary="List workspaces",
    description="The workspace of the API key (a key belongs to one workspace).",
)
def list_owners(request: HttpRequest, page: Query[Page]):
    workspace = request.auth.workspace
    if page.cursor:
        return []  # one workspace: there is never a second page
    return [
        {
            "owner": owner_dict(workspace),
            "cursor": encode_cursor(workspace.created_at, workspace.id),
        }
    ]


@owners_router.get(
    "/owners/{ownerId}",
    response={200: OwnerOut, **errors(404)},
    operation_id="retrieve-owner",
    summary="Retrieve workspace",
)
def retrieve_owner(request: HttpRequest, ownerId: str):
    if ownerId != request.auth.workspace_id:
        raise not_found("owner")
    return owner_dict(request.auth.workspace)


# Services ------------------------------------------------------------------------------------


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@router.get(
    "/services",
    response={200: list[ServiceWithCursor], **errors(400)},
    exclude_none=True,
    operation_id="list-services",
    summary="List services",
)
def list_services(request: HttpRequest, filters: Query[ServiceListQuery]):
    services = request.auth.workspace.services.select_related("plan")
    if filters.name:
        services = services.filter(name__in=_split(filters.name))
    if filters.type:
        services = services.filter(type__in=_split(filters.type))
    if filters.suspended:
        services = services.filter(
            suspended__in=[v == "suspended" for v in _split(filters.suspended)]
        )
    if filters.ownerId:
        services = services.filter(workspace_id__in=_split(filters.ownerId))
    if filters.createdBefore:
        services = services.filter(created_at__lt=aware(filters.createdBefore, "createdBefore"))
    if filters.createdAfter:
        services = services.filter(created_at__gte=aware(filters.createdAfter, "createdAfter"))
    return [
        {"service": service_dict(s), "cursor": encode_cursor(s.created_at, s.id)}
        for s in paginate(services, filters, ("srv", "crn"))
    ]


def _source_fields(body, service: Service | None) -> dict:
    """The build source: an image, or a repository (+ branch, Dockerfile and context)."""
    image = body.image.imagePath if body.image else None
    if image and body.repo:
        raise bad_request("image", "give either image.imagePath or repo, not both")
    fields: dict = {}
    if image:
        fields.update(image_ref=image, repo_url="", branch="")
    elif body.repo:
        fields.update(repo_url=body.repo, image_ref="")
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


def _plan(service_type: str, value: str):
    plan = find_plan(service_type, value)
    if plan is None:
        raise bad_request(
            "serviceDetails.plan",
            f"unknown plan {value!r} for a {service_type}; valid plans: "
            f"{plan_choices(service_type)}",
        )
    return plan


def _check_env_keys(env_vars: list[EnvVarIn], field: str) -> None:
    seen = set()
    for index, var in enumerate(env_vars):
        if var.key in seen:
            raise bad_request(f"{field}[{index}].key", f"duplicate key {var.key!r}")
        seen.add(var.key)
        if var.value is None and not var.generateValue:
            raise bad_request(f"{field}[{index}].value", "give value or generateValue: true")


def _env_value(var: EnvVarIn) -> str:
    return var.value if var.value is not None else secrets.token_urlsafe(32)


@router.post(
    "/services",
    response={201: ServiceCreatedOut, **errors(400, 403)},
    exclude_none=True,
    operation_id="create-service",
    summary="Create service",
    description="Render's create body. Starts the service's first build (`buildId`).",
)
def create_service(request: HttpRequest, payload: ServiceCreateIn):
    require_admin(request)
    workspace = request.auth.workspace
    if payload.ownerId != workspace.id:
        raise bad_request("ownerId", "unknown owner; use an id from GET /v1/owners")
    details = payload.serviceDetails
    plan = _plan(payload.type, details.plan if details and details.plan else "starter")
    fields = _source_fields(payload, None)
    if details and details.disk:
        fields.update(
            disk_name=details.disk.name,
            disk_mount_path=details.disk.mountPath,
            disk_size_gb=details.disk.sizeGB,
        )
    _check_env_keys(payload.envVars, "envVars")
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
                **fields,
            )
            EnvVar.objects.bulk_create(
                EnvVar(service=service, key=var.key, value=_env_value(var))
                for var in payload.envVars
            )
            build = request_build(service, user=request.auth.user)
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
def retrieve_service(request: HttpRequest, serviceId: str):
    return service_dict(service_in(request.auth.workspace, serviceId))


@router.patch(
    "/services/{serviceId}",
    response={200: ServiceOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="update-service",
    summary="Update service",
)
def update_service(request: HttpRequest, serviceId: str, payload: ServiceUpdateIn):
    require_admin(request)
    service = service_in(request.auth.workspace, serviceId)
    fields = _source_fields(payload, service)
    if payload.name is not None and payload.name != service.name:
        if request.auth.workspace.services.filter(name=payload.name).exists():
            raise bad_request("name", f"a service named {payload.name!r} already exists")
        fields["name"] = payload.name
    if payload.rootDir is not None:
        fields["root_dir"] = payload.rootDir
    if payload.autoDeploy is not None:
        fields["auto_deploy"] = payload.autoDeploy == "yes"
    details = payload.serviceDetails
    if details and details.plan:
        fields["plan"] = _plan(service.type, details.plan)
    if details and details.disk:
        fields.update(
            disk_name=details.disk.name,
            disk_mount_path=details.disk.mountPath,
            disk_size_gb=details.disk.sizeGB,
        )
    for name, value in fields.items():
        setattr(service, name, value)
    try:
        service.save()
    except IntegrityError as exc:
        raise bad_request("name", f"a service named {payload.name!r} already exists") from exc
    return service_dict(service_in(request.auth.workspace, service.id))


def _set_suspended(request: HttpRequest, service_id: str, suspended: bool):
    require_admin(request)
    service = service_in(request.auth.workspace, service_id)
    # Jobs keep running: a job never depends on its service after it was created.
    Service.objects.filter(pk=service.pk).update(suspended=suspended)
    return empty_response(request, 202)


@router.post(
    "/services/{serviceId}/suspend",
    response={202: None, **errors(403, 404)},
    operation_id="suspend-service",
    summary="Suspend service",
    description="Running jobs are not affected.",
)
def suspend_service(request: HttpRequest, serviceId: str):
    return _set_suspended(request, serviceId, True)


@router.post(
    "/services/{serviceId}/resume",
    response={202: None, **errors(403, 404)},
    operation_id="resume-service",
    summary="Resume service",
)
def resume_service(request: HttpRequest, serviceId: str):
    return _set_suspended(request, serviceId, False)


# Env vars ------------------------------------------------------------------------------------


def _reveal(request: HttpRequest) -> bool:
    # Only admins see values (a read-only admin key may read them); developers and viewers see
    # names only.
    return Role.can_administer(request.auth.role)


def _key_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _env_list(request: HttpRequest, env_vars) -> list[dict]:
    reveal = _reveal(request)
    return [
        {"envVar": env_var_dict(v.key, v.value, reveal=reveal), "cursor": _key_cursor(v.key)}
        for v in env_vars
    ]


@router.get(
    "/services/{serviceId}/env-vars",
    response={200: list[EnvVarWithCursor], **errors(400, 404)},
    exclude_none=True,
    operation_id="get-env-vars-for-service",
    summary="List env vars",
    description="By key. Values only for admins; developers and viewers get names only.",
)
def list_env_vars(request: HttpRequest, serviceId: str, page: Query[EnvVarListQuery]):
    service = service_in(request.auth.workspace, serviceId)
    env_vars = service.env_vars.order_by("key")
    if page.cursor:
        try:
            after = unb64(page.cursor).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise bad_request("cursor", "not a cursor of this list") from None
        env_vars = env_vars.filter(key__gt=after)
    return _env_list(request, env_vars[: page.limit])


@router.put(
    "/services/{serviceId}/env-vars",
    response={200: list[EnvVarWithCursor], **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="update-env-vars-for-service",
    summary="Replace env vars",
    description="Replaces all of the service's env vars. Existing jobs keep their snapshot.",
)
def replace_env_vars(request: HttpRequest, serviceId: str, payload: list[EnvVarIn]):
    require_admin(request)
    service = service_in(request.auth.workspace, serviceId)
    _check_env_keys(payload, "body")
    if len(payload) > 1000:
        raise bad_request("body", "at most 1000 env vars")
    with transaction.atomic():
        Service.objects.select_for_update().filter(pk=service.pk).first()
        service.env_vars.all().delete()
        EnvVar.objects.bulk_create(
            EnvVar(service=service, key=var.key, value=_env_value(var)) for var in payload
        )
    return _env_list(request, service.env_vars.order_by("key"))


@router.get(
    "/services/{serviceId}/env-vars/{envVarKey}",
    response={200: EnvVarOut, **errors(404)},
    exclude_none=True,
    operation_id="retrieve-env-var",
    summary="Retrieve env var",
)
def retrieve_env_var(request: HttpRequest, serviceId: str, envVarKey: str):
    service = service_in(request.auth.workspace, serviceId)
    var = service.env_vars.filter(key=envVarKey).first()
    if var is None:
        raise not_found("env var")
    return env_var_dict(var.key, var.value, reveal=_reveal(request))


@router.put(
    "/services/{serviceId}/env-vars/{envVarKey}",
    response={200: EnvVarOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="update-env-var",
    summary="Add or update env var",
)
def put_env_var(request: HttpRequest, serviceId: str, envVarKey: str, payload: EnvVarValueIn):
    require_admin(request)
    service = service_in(request.auth.workspace, serviceId)
    if len(envVarKey) > 256 or not re.fullmatch(EnvVar.KEY_PATTERN, envVarKey):
        raise bad_request("envVarKey", EnvVar.KEY_RULE)
    with transaction.atomic():
        Service.objects.select_for_update().filter(pk=service.pk).first()
        EnvVar.objects.update_or_create(
            service=service, key=envVarKey, defaults={"value": payload.value}
        )
    return env_var_dict(envVarKey, payload.value, reveal=True)


@router.delete(
    "/services/{serviceId}/env-vars/{envVarKey}",
    response={204: None, **errors(403, 404)},
    operation_id="delete-env-var",
    summary="Delete env var",
)
def delete_env_var(request: HttpRequest, serviceId: str, envVarKey: str):
    require_admin(request)
    service = service_in(request.auth.workspace, serviceId)
    deleted, _ = service.env_vars.filter(key=envVarKey).delete()
    if not deleted:
        raise not_found("env var")
    return empty_response(request, 204)


# Builds --------------------------------------------------------------------------------------


@router.get(
    "/services/{serviceId}/builds",
    response={200: list[BuildWithCursor], **errors(400, 404)},
    exclude_none=True,
    operation_id="list-builds",
    summary="List builds",
    tags=["Builds"],
)
def list_builds(request: HttpRequest, serviceId: str, page: Query[Page]):
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
def create_build(request: HttpRequest, serviceId: str, payload: BuildCreateIn | None = None):
    require_write(request)
    service = service_in(request.auth.workspace, serviceId)
    commit_id = payload.commitId if payload else None
    image_url = payload.imageUrl if payload else None
    if commit_id and not service.repo_url:
        raise bad_request("commitId", "this service builds from an image, not a repo")
    if image_url and not service.image_ref:
        raise bad_request("imageUrl", "this service builds from a repo; use commitId")
    build = request_build(
        service, commit_id=commit_id or "", image_ref=image_url or "", user=request.auth.user
    )
    return Status(201, build_dict(build))


@router.get(
    "/services/{serviceId}/builds/{buildId}",
    response={200: BuildOut, **errors(404)},
    exclude_none=True,
    operation_id="retrieve-build",
    summary="Retrieve build",
    tags=["Builds"],
)
def retrieve_build(request: HttpRequest, serviceId: str, buildId: str):
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
def cancel_build_view(request: HttpRequest, serviceId: str, buildId: str):
    require_write(request)
    service = service_in(request.auth.workspace, serviceId)
    build = cancel_build(build_of(service, buildId), user=request.auth.user)
    return build_dict(build)

"""Registry credentials, Render's paths and shapes: ``/v1/registrycredentials`` (list, create)
and ``/v1/registrycredentials/{registryCredentialId}`` (retrieve, update, delete). Any key of
the workspace reads them; creating, updating and deleting need an admin's read-write key. The
token (``authToken``) is write-only: stored encrypted, it is in no response, page or error."""

from django.db import IntegrityError, transaction
from ninja import Query, Router

from api.auth import ApiRequest, require_admin
from api.errors import ApiError, bad_request, errors
from api.fields import aware
from api.responses import empty_response
from api.schemas.registry_credentials import (
    RegistryCredentialCreateIn,
    RegistryCredentialListQuery,
    RegistryCredentialOut,
    RegistryCredentialUpdateIn,
    registry_credential_dict,
)
from services.access import registry_credential_in
from services.keyset import keyset_page
from services.models import RegistryCredential

router = Router(tags=["Registry Credentials"])


def _name_taken(name: str) -> ApiError:
    return ApiError(409, "conflict", f"name: a registry credential named {name!r} already exists")


@router.get(
    "/registrycredentials",
    response={200: list[RegistryCredentialOut], **errors(400)},
    operation_id="list-registry-credentials",
    summary="List registry credentials",
    description="The workspace's credentials, newest first. Render's list items carry no "
    "cursor: for the next page, pass the `id` of the last credential as `cursor`.",
)
def list_registry_credentials(request: ApiRequest, filters: Query[RegistryCredentialListQuery]):
    workspace = request.auth.workspace
    credentials = workspace.registry_credentials.defer("auth_token")
    if filters.ownerId and workspace.id not in filters.ownerId:
        return []
    if filters.name:
        credentials = credentials.filter(name__in=filters.name)
    if filters.username:
        credentials = credentials.filter(username__in=filters.username)
    if filters.type:
        credentials = credentials.filter(registry__in=filters.type)
    for name, lookup in (
        ("createdBefore", "created_at__lt"),
        ("createdAfter", "created_at__gte"),
        ("updatedBefore", "updated_at__lt"),
        ("updatedAfter", "updated_at__gte"),
    ):
        value = getattr(filters, name)
        if value:
            credentials = credentials.filter(**{lookup: aware(value, name)})
    after = None
    if filters.cursor:
        last = workspace.registry_credentials.filter(pk=filters.cursor).first()
        if last is None:
            raise bad_request("cursor", "pass the `id` of the last credential of a page")
        after = (last.created_at, last.id)
    return [registry_credential_dict(c) for c in keyset_page(credentials, after, filters.limit)]


@router.post(
    "/registrycredentials",
    response={200: RegistryCredentialOut, **errors(400, 403, 409)},
    operation_id="create-registry-credential",
    summary="Create registry credential",
    description="Admins only. Answers 200, as Render does.",
)
def create_registry_credential(request: ApiRequest, payload: RegistryCredentialCreateIn):
    require_admin(request)
    workspace = request.auth.workspace
    if payload.ownerId != workspace.id:
        raise bad_request("ownerId", "unknown owner; use an id from GET /v1/owners")
    if workspace.registry_credentials.filter(name=payload.name).exists():
        raise _name_taken(payload.name)
    try:
        with transaction.atomic():
            credential = RegistryCredential.objects.create(
                workspace=workspace,
                name=payload.name,
                registry=payload.registry,
                username=payload.username,
                auth_token=payload.authToken,
            )
    except IntegrityError as exc:  # a concurrent create took the name
        raise _name_taken(payload.name) from exc
    return registry_credential_dict(credential)


@router.get(
    "/registrycredentials/{registryCredentialId}",
    response={200: RegistryCredentialOut, **errors(404)},
    operation_id="retrieve-registry-credential",
    summary="Retrieve registry credential",
)
def retrieve_registry_credential(request: ApiRequest, registryCredentialId: str):
    return registry_credential_dict(
        registry_credential_in(request.auth.workspace, registryCredentialId)
    )


@router.patch(
    "/registrycredentials/{registryCredentialId}",
    response={200: RegistryCredentialOut, **errors(400, 403, 404, 409)},
    operation_id="update-registry-credential",
    summary="Update registry credential",
    description="Admins only. Every field is required, as in Render's body. Builds started "
    "after the update pull with the new values.",
)
def update_registry_credential(
    request: ApiRequest, registryCredentialId: str, payload: RegistryCredentialUpdateIn
):
    credential = registry_credential_in(request.auth.workspace, registryCredentialId)
    require_admin(request)
    others = request.auth.workspace.registry_credentials.exclude(pk=credential.pk)
    if others.filter(name=payload.name).exists():
        raise _name_taken(payload.name)
    credential.name = payload.name
    credential.registry = payload.registry
    credential.username = payload.username
    credential.auth_token = payload.authToken
    try:
        with transaction.atomic():
            credential.save()
    except IntegrityError as exc:
        raise _name_taken(payload.name) from exc
    return registry_credential_dict(credential)


@router.delete(
    "/registrycredentials/{registryCredentialId}",
    response={204: None, **errors(403, 404)},
    operation_id="delete-registry-credential",
    summary="Delete registry credential",
    description="Admins only. Services that used it keep their image and pull without "
    "credentials from then on.",
)
def delete_registry_credential(request: ApiRequest, registryCredentialId: str):
    credential = registry_credential_in(request.auth.workspace, registryCredentialId)
    require_admin(request)
    credential.delete()
    return empty_response(request, 204)

"""A service's env vars in Render's shapes. Values are for admins: a developer or viewer reading
them gets a 403 (Render's error shape, which its client reads), or the names with Oneoff's
``keysOnly=true``; the dashboard shows them the names."""

import base64
import binascii
import re
import secrets

from django.db import transaction
from ninja import Query, Router

from api.auth import ApiRequest, require_admin
from api.errors import ApiError, bad_request, errors, not_found
from api.pagination import unb64
from api.responses import empty_response
from api.schemas.services import (
    EnvVarIn,
    EnvVarListQuery,
    EnvVarOut,
    EnvVarValueIn,
    EnvVarWithCursor,
    env_var_dict,
)
from audit.trail import actor_of, record
from services.access import service_in
from services.models import EnvVar, Role, Service

router = Router(tags=["Services"])


def check_env_keys(env_vars: list[EnvVarIn], field: str) -> None:
    seen = set()
    for index, var in enumerate(env_vars):
        if var.key in seen:
            raise bad_request(f"{field}[{index}].key", f"duplicate key {var.key!r}")
        seen.add(var.key)
        if var.value is None and not var.generateValue:
            raise bad_request(f"{field}[{index}].value", "give value or generateValue: true")
        if var.value is not None and var.generateValue:
            raise bad_request(
                f"{field}[{index}].generateValue", "give value or generateValue: true, not both"
            )
        check_env_value(var.key, var.value or "", f"{field}[{index}].value")


def check_env_value(key: str, value: str, field: str) -> None:
    problem = EnvVar.value_problem(value)
    if problem:
        raise bad_request(field, f"env var {key!r}: {problem}")


def env_value(value: str | None) -> str:
    """The value given, or Render's ``generateValue``: a random one."""
    return value if value is not None else secrets.token_urlsafe(32)


def require_value_reader(request: ApiRequest) -> None:
    """Only admins read values (a read-only admin key may); developers and viewers get a 403."""
    if not Role.can_administer(request.auth.role):
        raise ApiError(
            403,
            "forbidden",
            "env var values are shown to admins only; list the names with keysOnly=true",
        )


def _key_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _env_list(env_vars, *, reveal: bool = True) -> list[dict]:
    return [
        {
            "envVar": env_var_dict(v.key, v.value, reveal=reveal, secret=v.secret),
            "cursor": _key_cursor(v.key),
        }
        for v in env_vars
    ]


@router.get(
    "/services/{serviceId}/env-vars",
    response={200: list[EnvVarWithCursor], **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="get-env-vars-for-service",
    summary="List env vars",
    description="By key. Values are for admins (others get a 403); keysOnly=true gives anyone "
    "who may read the service the names.",
)
def list_env_vars(request: ApiRequest, serviceId: str, page: Query[EnvVarListQuery]):
    service = service_in(request.auth.workspace, serviceId)
    if not page.keysOnly:
        require_value_reader(request)
    env_vars = service.env_vars.order_by("key")
    if page.cursor:
        try:
            after = unb64(page.cursor).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise bad_request("cursor", "not a cursor of this list") from None
        env_vars = env_vars.filter(key__gt=after)
    return _env_list(env_vars[: page.limit], reveal=not page.keysOnly)


@router.put(
    "/services/{serviceId}/env-vars",
    response={200: list[EnvVarWithCursor], **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="update-env-vars-for-service",
    summary="Replace env vars",
    description="Replaces all of the service's env vars. Existing jobs keep their snapshot.",
)
def replace_env_vars(request: ApiRequest, serviceId: str, payload: list[EnvVarIn]):
    require_admin(request)
    service = service_in(request.auth.workspace, serviceId)
    check_env_keys(payload, "body")
    if len(payload) > 1000:
        raise bad_request("body", "at most 1000 env vars")
    with transaction.atomic():
        Service.objects.select_for_update().filter(pk=service.pk).first()
        before = set(service.env_vars.values_list("key", flat=True))
        service.env_vars.all().delete()
        EnvVar.objects.bulk_create(
            EnvVar(
                service=service, key=var.key, value=env_value(var.value), secret=bool(var.secret)
            )
            for var in payload
        )
        after = {var.key for var in payload}
        # Names only, never values.
        record(
            actor_of(request),
            service.workspace_id,
            "env_vars.replace",
            target_type="service",
            target_id=service.id,
            metadata={"keys": sorted(after), "removedKeys": sorted(before - after)},
        )
    return _env_list(service.env_vars.order_by("key"))


@router.get(
    "/services/{serviceId}/env-vars/{envVarKey}",
    response={200: EnvVarOut, **errors(403, 404)},
    exclude_none=True,
    operation_id="retrieve-env-var",
    summary="Retrieve env var",
    description="Admins only (a developer or viewer gets a 403).",
)
def retrieve_env_var(request: ApiRequest, serviceId: str, envVarKey: str):
    service = service_in(request.auth.workspace, serviceId)
    require_value_reader(request)
    var = service.env_vars.filter(key=envVarKey).first()
    if var is None:
        raise not_found("env var")
    return env_var_dict(var.key, var.value, reveal=True, secret=var.secret)


@router.put(
    "/services/{serviceId}/env-vars/{envVarKey}",
    response={200: EnvVarOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="update-env-var",
    summary="Add or update env var",
    description="With a value, or Render's generateValue: true for a random one.",
)
def put_env_var(request: ApiRequest, serviceId: str, envVarKey: str, payload: EnvVarValueIn):
    require_admin(request)
    service = service_in(request.auth.workspace, serviceId)
    if len(envVarKey) > 256 or not re.fullmatch(EnvVar.KEY_PATTERN, envVarKey):
        raise bad_request("envVarKey", EnvVar.KEY_RULE)
    if payload.value is not None and payload.generateValue:
        raise bad_request("generateValue", "give value or generateValue: true, not both")
    if payload.value is None and not payload.generateValue:
        raise bad_request("value", "give value or generateValue: true")
    value = env_value(payload.value)
    check_env_value(envVarKey, value, "value")
    with transaction.atomic():
        Service.objects.select_for_update().filter(pk=service.pk).first()
        defaults: dict = {"value": value}
        if payload.secret is not None:
            defaults["secret"] = payload.secret
        var, _ = EnvVar.objects.update_or_create(service=service, key=envVarKey, defaults=defaults)
        record(
            actor_of(request),
            service.workspace_id,
            "env_var.set",
            target_type="service",
            target_id=service.id,
            metadata={"key": envVarKey},  # the name, never the value
        )
    return env_var_dict(envVarKey, value, reveal=True, secret=var.secret)


@router.delete(
    "/services/{serviceId}/env-vars/{envVarKey}",
    response={204: None, **errors(403, 404)},
    operation_id="delete-env-var",
    summary="Delete env var",
)
def delete_env_var(request: ApiRequest, serviceId: str, envVarKey: str):
    require_admin(request)
    service = service_in(request.auth.workspace, serviceId)
    with transaction.atomic():
        deleted, _ = service.env_vars.filter(key=envVarKey).delete()
        if not deleted:
            raise not_found("env var")
        record(
            actor_of(request),
            service.workspace_id,
            "env_var.delete",
            target_type="service",
            target_id=service.id,
            metadata={"key": envVarKey},
        )
    return empty_response(request, 204)

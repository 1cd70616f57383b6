"""Log stream settings, Render's paths and shapes: ``/v1/logs/streams/owner/{ownerId}`` (the
workspace's default destination), ``/v1/logs/streams/resource/{resourceId}`` (a service's
override) and ``/v1/logs/streams/resource`` (the overrides listed). Rules and shapes live in
``logstreams.streams``; reading needs any key of the workspace, changing needs an admin's
read-write key. Tokens are write-only."""

from typing import Literal

from ninja import Field, Query, Router, Schema

from api.auth import ApiRequest, require_admin
from api.errors import ApiError, bad_request, errors, not_found
from api.pagination import Page
from api.responses import empty_response
from audit.trail import actor_of
from logstreams import streams as logstreams
from logstreams.models import ServiceLogStream
from services.access import service_in

router = Router(tags=["Log streams"])

ENDPOINT = Field(
    None,
    max_length=300,
    description="`HOST:PORT` of a TLS syslog receiver (RFC 5424 over TCP, RFC 5425 framing). "
    "It must resolve to public addresses only, unless the operator allow-lists them "
    "(`EGRESS_ALLOW`).",
    examples=["logs.example.com:6514"],
)
TOKEN = Field(
    None,
    max_length=1000,
    description="Sent with every line (structured data `token`); never returned. Omit to keep "
    'the current one (a new `endpoint` removes it), send `""` to remove it.',
)


class OwnerStreamIn(Schema):
    endpoint: str | None = ENDPOINT
    token: str | None = TOKEN
    preview: Literal["send", "drop"] = Field(
        description="Logs of preview instances: send or drop (Oneoff has none yet)."
    )
    enabled: bool | None = Field(
        None, description="Oneoff: false pauses all forwarding of the workspace's logs."
    )


class OwnerStreamOut(Schema):
    ownerId: str
    endpoint: str
    preview: Literal["send", "drop"]
    enabled: bool = Field(description="Oneoff: false while forwarding is paused.")
    hasToken: bool = Field(description="Oneoff: whether a token is set (it is never returned).")
    droppedLines: int = Field(
        description="Oneoff: lines never delivered because log retention purged them while "
        "a destination was down (forwarding reads the stored log, so this is the only loss)."
    )
    lastDeliveredAt: str | None = Field(None, json_schema_extra={"format": "date-time"})
    lastError: str | None = Field(None, description="Oneoff: the last delivery error.")
    lastErrorAt: str | None = Field(None, json_schema_extra={"format": "date-time"})


class ResourceStreamIn(Schema):
    setting: Literal["send", "drop"] = Field(
        description="send: to `endpoint` (a custom destination); drop: nothing is sent."
    )
    endpoint: str | None = ENDPOINT
    token: str | None = TOKEN


class ResourceStreamOut(Schema):
    resourceId: str
    setting: Literal["send", "drop"]
    endpoint: str | None = Field(None, description="Present when setting is send.")
    hasToken: bool | None = Field(None, description="Oneoff: whether a token is set.")


def _owner(request: ApiRequest, owner_id: str):
    workspace = request.auth.workspace
    if owner_id != workspace.id:
        raise not_found("owner")
    return workspace


def _given(payload: Schema, name: str):
    return getattr(payload, name) if name in payload.model_fields_set else logstreams.UNSET


@router.get(
    "/logs/streams/owner/{ownerId}",
    response={200: OwnerStreamOut, **errors(404)},
    exclude_none=True,
    operation_id="get-owner-log-stream",
    summary="Retrieve log stream",
    description="The workspace's default log stream; 404 when none is set.",
)
def retrieve_owner_stream(request: ApiRequest, ownerId: str):
    stream = logstreams.owner_stream(_owner(request, ownerId))
    if stream is None:
        raise ApiError(404, "not_found", "no log stream is set for this owner")
    return logstreams.owner_stream_dict(stream)


@router.put(
    "/logs/streams/owner/{ownerId}",
    response={200: OwnerStreamOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="update-owner-log-stream",
    summary="Update log stream",
    description="Set the workspace's default log stream (admins). `preview` is required; "
    "`endpoint` is required the first time.",
)
def update_owner_stream(request: ApiRequest, ownerId: str, payload: OwnerStreamIn):
    workspace = _owner(request, ownerId)
    require_admin(request)
    for name in ("endpoint", "enabled"):
        if name in payload.model_fields_set and getattr(payload, name) is None:
            raise bad_request(name, "must not be null")
    stream = logstreams.set_owner_stream(
        workspace,
        preview=payload.preview,
        endpoint=_given(payload, "endpoint"),
        token=_given(payload, "token"),
        enabled=_given(payload, "enabled"),
        actor=actor_of(request),
    )
    return logstreams.owner_stream_dict(stream)


@router.delete(
    "/logs/streams/owner/{ownerId}",
    response={204: None, **errors(403, 404)},
    operation_id="delete-owner-log-stream",
    summary="Delete log stream",
)
def delete_owner_stream(request: ApiRequest, ownerId: str):
    workspace = _owner(request, ownerId)
    require_admin(request)
    if not logstreams.delete_owner_stream(workspace, actor=actor_of(request)):
        raise ApiError(404, "not_found", "no log stream is set for this owner")
    return empty_response(request, 204)


def _no_override(service):
    return ApiError(
        404,
        "not_found",
        f"{service.id} has no log stream override: its logs go to the workspace's log stream",
    )


class ResourceStreamsQuery(Page):
    ownerId: list[str] = Field(
        [], description="Workspace ids; only the key's own workspace has overrides to list."
    )
    resourceId: list[str] = Field([], description="Service ids (`srv-…`, `crn-…`).")
    setting: list[Literal["send", "drop"]] = Field([], description="`send` and/or `drop`.")
    cursor: str | None = Field(
        None,
        max_length=200,
        description="The `resourceId` of the last item of a page: the next page starts after it "
        "(overrides are listed by resource id).",
    )


@router.get(
    "/logs/streams/resource",
    response={200: list[ResourceStreamOut], **errors(400)},
    exclude_none=True,
    operation_id="list-resource-log-streams",
    summary="List log stream overrides",
    description="The log stream overrides of the key's workspace's services, by resource id. "
    "Oneoff's overrides have no id of their own, so Render's `logStreamId` filter is a 400.",
)
def list_resource_streams(request: ApiRequest, filters: Query[ResourceStreamsQuery]):
    workspace = request.auth.workspace
    overrides = ServiceLogStream.objects.filter(service__workspace=workspace)
    if filters.ownerId and workspace.id not in filters.ownerId:
        return []
    if filters.resourceId:
        overrides = overrides.filter(service_id__in=filters.resourceId)
    if filters.setting:
        overrides = overrides.filter(setting__in=filters.setting)
    if filters.cursor:
        overrides = overrides.filter(service_id__gt=filters.cursor)
    return [
        logstreams.resource_stream_dict(override)
        for override in overrides.order_by("service_id")[: filters.limit]
    ]


@router.get(
    "/logs/streams/resource/{resourceId}",
    response={200: ResourceStreamOut, **errors(404)},
    exclude_none=True,
    operation_id="get-resource-log-stream",
    summary="Retrieve log stream override",
    description="A service's override; 404 when it has none (it uses the workspace's stream).",
)
def retrieve_resource_stream(request: ApiRequest, resourceId: str):
    service = service_in(request.auth.workspace, resourceId)
    override = logstreams.resource_stream(service)
    if override is None:
        raise _no_override(service)
    return logstreams.resource_stream_dict(override)


@router.put(
    "/logs/streams/resource/{resourceId}",
    response={200: ResourceStreamOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="update-resource-log-stream",
    summary="Update log stream override",
    description="`send` with an `endpoint` (and optional `token`) sends the service's logs to "
    "that destination; `drop` sends nothing. Delete the override to use the workspace's.",
)
def update_resource_stream(request: ApiRequest, resourceId: str, payload: ResourceStreamIn):
    service = service_in(request.auth.workspace, resourceId)
    require_admin(request)
    override = logstreams.set_resource_stream(
        service,
        setting=payload.setting,
        endpoint=_given(payload, "endpoint"),
        token=_given(payload, "token"),
        actor=actor_of(request),
    )
    return logstreams.resource_stream_dict(override)


@router.delete(
    "/logs/streams/resource/{resourceId}",
    response={204: None, **errors(403, 404)},
    operation_id="delete-resource-log-stream",
    summary="Delete log stream override",
)
def delete_resource_stream(request: ApiRequest, resourceId: str):
    service = service_in(request.auth.workspace, resourceId)
    require_admin(request)
    if not logstreams.delete_resource_stream(service, actor=actor_of(request)):
        raise _no_override(service)
    return empty_response(request, 204)

"""Owners (Render's name for workspaces): the ones the API key's workspace lets it see."""

from ninja import Query, Router

from api.auth import ApiRequest
from api.errors import errors, not_found
from api.pagination import Page, encode_cursor
from api.schemas.services import (
    OwnerOut,
    OwnerWithCursor,
    owner_dict,
)

router = Router(tags=["Workspaces"])


@router.get(
    "/owners",
    response={200: list[OwnerWithCursor], **errors(400)},
    operation_id="list-owners",
    summary="List workspaces",
    description="The workspace of the API key (a key belongs to one workspace).",
)
def list_owners(request: ApiRequest, page: Query[Page]):
    workspace = request.auth.workspace
    if page.cursor:
        return []  # one workspace: there is never a second page
    return [
        {
            "owner": owner_dict(workspace),
            "cursor": encode_cursor(workspace.created_at, workspace.id),
        }
    ]


@router.get(
    "/owners/{ownerId}",
    response={200: OwnerOut, **errors(404)},
    operation_id="retrieve-owner",
    summary="Retrieve workspace",
)
def retrieve_owner(request: ApiRequest, ownerId: str):
    if ownerId != request.auth.workspace_id:
        raise not_found("owner")
    return owner_dict(request.auth.workspace)


# Services ------------------------------------------------------------------------------------

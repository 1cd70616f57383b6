"""Owners (Render's name for workspaces): the ones the API key's workspace lets it see."""

from ninja import Query, Router

from api.auth import ApiRequest, require_admin
from api.errors import errors, not_found
from api.pagination import Page, encode_cursor
from api.schemas.services import (
    OwnerOut,
    OwnerUpdateIn,
    OwnerWithCursor,
    owner_dict,
)
from jobs import budget
from services.models import Workspace

router = Router(tags=["Workspaces"])


@router.get(
    "/owners",
    response={200: list[OwnerWithCursor], **errors(400)},
    exclude_none=True,
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
    exclude_none=True,
    operation_id="retrieve-owner",
    summary="Retrieve workspace",
)
def retrieve_owner(request: ApiRequest, ownerId: str):
    if ownerId != request.auth.workspace_id:
        raise not_found("owner")
    return _owner(request.auth.workspace)


def _owner(workspace: Workspace) -> dict:
    spent = None
    if workspace.monthly_budget is not None:
        spent = budget.spent_this_month(workspace.pk).total
    return owner_dict(workspace, spent=spent)


@router.patch(
    "/owners/{ownerId}",
    response={200: OwnerOut, **errors(400, 403, 404)},
    exclude_none=True,
    operation_id="update-owner",
    summary="Update workspace (Oneoff)",
    description="Oneoff's extension: set the workspace's `monthlyBudget` (admins only). Jobs "
    "already running are never stopped by it; creates that would pass it are a 402.",
)
def update_owner(request: ApiRequest, ownerId: str, payload: OwnerUpdateIn):
    require_admin(request)
    if ownerId != request.auth.workspace_id:
        raise not_found("owner")
    workspace = request.auth.workspace
    budget.set_budget(workspace, payload.monthlyBudget)
    return _owner(workspace)


# Services ------------------------------------------------------------------------------------

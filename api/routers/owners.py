"""Owners (Render's name for workspaces): the ones the API key's workspace lets it see."""

import base64
import hashlib
import hmac

from django.conf import settings
from django.contrib.auth.models import User
from ninja import Field, Query, Router

from api.auth import ApiRequest, require_admin
from api.errors import errors, not_found
from api.pagination import Page, encode_cursor
from api.schemas.services import (
    OwnerOut,
    OwnerUpdateIn,
    OwnerWithCursor,
    UserOut,
    owner_dict,
)
from jobs import budget
from services.models import Workspace

router = Router(tags=["Workspaces"])


class OwnerListQuery(Page):
    name: list[str] | None = Field(None, max_length=100, description="Names.")
    email: list[str] | None = Field(None, max_length=100, description="Emails.")


@router.get(
    "/owners",
    response={200: list[OwnerWithCursor], **errors(400)},
    exclude_none=True,
    operation_id="list-owners",
    summary="List workspaces",
    description="The workspace of the API key (a key belongs to one workspace).",
)
def list_owners(request: ApiRequest, page: Query[OwnerListQuery]):
    workspace = request.auth.workspace
    if page.cursor:
        return []  # one workspace: there is never a second page
    if (page.name and workspace.name not in page.name) or (
        page.email and workspace.email not in page.email
    ):
        return []
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
    description="The key's workspace (`tea-…`), or the key's own user as Render's personal "
    "owner (`own-…`, the `id` of `GET /v1/users`); any other id is a 404.",
)
def retrieve_owner(request: ApiRequest, ownerId: str):
    user = request.auth.user
    if ownerId == user_owner_id(user):
        return {"id": ownerId, "name": _name(user), "email": user.email, "type": "user"}
    if ownerId != request.auth.workspace_id:
        raise not_found("owner")
    return _owner(request.auth.workspace)


@router.get(
    "/users",
    response={200: UserOut, **errors()},
    operation_id="get-user",
    summary="Get the authenticated user",
    description="The user the API key belongs to. `id` is their personal owner id (`own-…`).",
)
def get_user(request: ApiRequest):
    user = request.auth.user
    return {"id": user_owner_id(user), "email": user.email, "name": _name(user)}


def user_owner_id(user: User) -> str:
    """A user's owner id in Render's shape (``own-`` and 20 characters of base32hex), stable and
    not guessable: a keyed hash of their primary key (``ENV_DIGEST_KEY``, kept with the other
    generated secrets), so it counts nothing and names no one else."""
    digest = hmac.new(
        settings.ENV_DIGEST_KEY.encode(), f"owner:{user.pk}".encode(), hashlib.sha256
    ).digest()
    return "own-" + base64.b32hexencode(digest).decode().lower()[:20]


def _name(user: User) -> str:
    return user.get_full_name() or user.email or user.username


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

"""Registry credentials in Render's shapes (``registryCredential``, its summary on a service,
and the create and update bodies). ``authToken`` is input only: no output schema has it."""

from datetime import datetime
from typing import Literal, get_args

from ninja import Field, Schema

from api.fields import isoformat
from api.pagination import Page
from services.models import RegistryCredential, RegistryKind

Registry = Literal["GITHUB", "GITLAB", "DOCKER", "GOOGLE_ARTIFACT", "AWS_ECR"]
REGISTRIES = [kind.value for kind in RegistryKind]
assert list(get_args(Registry)) == REGISTRIES, "Registry must list RegistryKind's values"
REGISTRY = Field(
    description="The registry to use this credential with (`DOCKER` also covers a self-hosted "
    "registry: the host comes from the service's `imagePath`).",
)
NAME = Field(min_length=1, max_length=100, description="Descriptive name for this credential.")
USERNAME = Field(
    min_length=1,
    max_length=200,
    pattern=r"^[^\x00-\x1f\x7f]+$",
    description="The username associated with the credential.",
)
AUTH_TOKEN = Field(
    min_length=1,
    max_length=16384,
    description="The password or access token. Write-only: never returned.",
    json_schema_extra={"writeOnly": True},
)


def registry_credential_dict(credential: RegistryCredential) -> dict:
    return {
        "id": credential.id,
        "name": credential.name,
        "registry": credential.registry,
        "username": credential.username,
        "updatedAt": isoformat(credential.updated_at),
    }


def registry_credential_summary(credential: RegistryCredential | None) -> dict | None:
    """Render's ``registryCredentialSummary``, as a service shows its credential."""
    if credential is None:
        return None
    return {"id": credential.id, "name": credential.name}


class RegistryCredentialOut(Schema):
    id: str = Field(pattern=r"^rgc-[0-9a-v]{20}$", description="Unique identifier.")
    name: str
    registry: Registry
    username: str
    updatedAt: str = Field(json_schema_extra={"format": "date-time"})


class RegistryCredentialSummaryOut(Schema):
    id: str
    name: str


class RegistryCredentialCreateIn(Schema):
    registry: Registry = REGISTRY
    name: str = NAME
    username: str = USERNAME
    authToken: str = AUTH_TOKEN
    ownerId: str = Field(max_length=64, description="The workspace that owns the credential.")


class RegistryCredentialUpdateIn(Schema):
    """Render's update body: every field is required (a credential is replaced whole)."""

    registry: Registry = REGISTRY
    name: str = NAME
    username: str = USERNAME
    authToken: str = AUTH_TOKEN


class RegistryCredentialListQuery(Page):
    cursor: str | None = Field(
        None,
        max_length=64,
        description="The `id` of the last credential of the previous page (Render's list "
        "returns credentials without a cursor of their own).",
    )
    name: list[str] | None = Field(None, max_length=100, description="Names.")
    username: list[str] | None = Field(None, max_length=100, description="Usernames.")
    type: list[Registry] | None = Field(None, description="Registries, e.g. `DOCKER`.")
    ownerId: list[str] | None = Field(None, max_length=100)
    createdBefore: datetime | None = None
    createdAfter: datetime | None = None
    updatedBefore: datetime | None = None
    updatedAfter: datetime | None = None

"""JSON shapes of owners, services, env vars and builds (Render's where Render has them), and
the schemas that validate the API's input. The ``*_dict`` functions are the one place each shape
is written."""

from datetime import datetime
from decimal import Decimal
from typing import Literal

from django.conf import settings
from ninja import Field, Schema
from pydantic.json_schema import JsonDict

from api.fields import isoformat
from api.pagination import Page
from api.schemas.registry_credentials import (
    RegistryCredentialSummaryOut,
    registry_credential_summary,
)
from services.models import Build, EnvVar, Plan, Service, ServiceType, Workspace

SERVICE_TYPES = [t.value for t in ServiceType]
ServiceTypeName = Literal["web_service", "private_service", "background_worker", "cron_job"]
BUILD_STATUSES = ["queued", "building", "succeeded", "failed", "canceled"]
ENV_VALUE_MAX = 64 * 1024
DATETIME: JsonDict = {"format": "date-time"}


def render_plan_name(plan: Plan) -> str:
    """Render names plans ``starter``, ``standard``, ``pro_plus``…; Oneoff's names map onto them."""
    return plan.name.strip().lower().replace(" ", "_").replace("-", "_")


def find_plan(service_type: str, value: str) -> Plan | None:
    """A plan for this service type by Oneoff id (``plan-srv-006``) or Render name (``starter``)."""
    kind = "cron" if service_type == ServiceType.CRON_JOB else "srv"
    plans = list(Plan.objects.filter(kind=kind))
    return next((p for p in plans if value in (p.id, render_plan_name(p))), None)


def plan_choices(service_type: str) -> str:
    kind = "cron" if service_type == ServiceType.CRON_JOB else "srv"
    return ", ".join(f"{render_plan_name(p)} ({p.id})" for p in Plan.objects.filter(kind=kind))


def owner_dict(workspace: Workspace, *, spent: Decimal | None = None) -> dict:
    """Render's owner, plus Oneoff's ``monthlyBudget`` (and this month's ``monthlySpent``, when
    given) once a budget is set."""
    data: dict = {
        "id": workspace.id,
        "name": workspace.name,
        "email": workspace.email,
        "type": "team",
    }
    if workspace.monthly_budget is not None:
        data["monthlyBudget"] = str(workspace.monthly_budget)
        if spent is not None:
            data["monthlySpent"] = str(spent)
    return data


# Fields of Render's ``serviceDetails`` that have no meaning for a service whose only runs are
# one-off jobs, with the honest constant each gets (README, "Render compatibility"): one
# instance, no public URL, no open ports, no health check, no start command, the standard build.
NO_URL = ""
BUILD_PLAN = "starter"


def service_details_dict(service: Service) -> dict:
    """Render's ``serviceDetails`` for the service's type (``webServiceDetails``,
    ``privateServiceDetails``, ``backgroundWorkerDetails``, ``cronJobDetails``): every field
    Render's schema requires, plus Oneoff's ``planId``."""
    built = bool(service.repo_url)
    details: dict = {
        "env": "image" if service.image_ref else "docker",
        "runtime": "image" if service.image_ref else "docker",
        "plan": render_plan_name(service.plan),
        "planId": service.plan_id,
        "region": settings.REGION,
        "buildPlan": BUILD_PLAN,
        "envSpecificDetails": {
            "dockerCommand": "",
            "dockerContext": service.docker_context if built else "",
            "dockerfilePath": service.dockerfile_path if built else "",
        },
    }
    if service.type == ServiceType.CRON_JOB:
        details["schedule"] = service.schedule
        return details
    details["numInstances"] = 1
    if service.type in (ServiceType.WEB_SERVICE, ServiceType.PRIVATE_SERVICE):
        details["url"] = NO_URL
        details["openPorts"] = []
    if service.type == ServiceType.WEB_SERVICE:
        details["healthCheckPath"] = ""
    if service.disk_mount_path:
        details["disk"] = {
            "id": "dsk-" + service.id.partition("-")[2],  # the service's one disk
            "name": service.disk_name,
            "mountPath": service.disk_mount_path,
            "sizeGB": service.disk_size_gb,
        }
    return details


def service_dict(service: Service) -> dict:
    details = service_details_dict(service)
    data: dict = {
        "id": service.id,
        "name": service.name,
        "ownerId": service.workspace_id,
        "type": service.type,
        "slug": service.slug,
        "suspended": "suspended" if service.suspended else "not_suspended",
        "suspenders": ["user"] if service.suspended else [],
        "autoDeploy": "yes" if service.auto_deploy else "no",
        "notifyOnFail": "default",
        "rootDir": service.root_dir,
        "dashboardUrl": f"{settings.SITE_URL.rstrip('/')}/services/{service.id}/",
        "createdAt": isoformat(service.created_at),
        "updatedAt": isoformat(service.updated_at),
        "serviceDetails": details,
    }
    if service.repo_url:
        data["repo"] = service.repo_shown
        data["branch"] = service.branch
    if service.image_ref:
        data["imagePath"] = service.image_ref
    if service.registry_credential_id:
        data["registryCredential"] = registry_credential_summary(service.registry_credential)
    if service.max_concurrent_jobs is not None:
        data["maxConcurrentJobs"] = service.max_concurrent_jobs
    data["maskSecrets"] = service.mask_secrets
    return data


def build_dict(build: Build) -> dict:
    data = {
        "id": build.id,
        "serviceId": build.service_id,
        "status": build.status,
        "createdAt": isoformat(build.created_at),
    }
    for key, value in (
        ("imageId", build.image_id),
        ("imageDigest", build.image_digest),
        ("commitId", build.commit_id),
        ("imageUrl", build.image_ref),
        ("reason", build.reason),
        ("startedAt", isoformat(build.started_at)),
        ("finishedAt", isoformat(build.finished_at)),
    ):
        if value:
            data[key] = value
    return data


def env_var_dict(key: str, value: str, *, reveal: bool, secret: bool = False) -> dict:
    """Render's env var, and Oneoff's ``secret: true`` for a key marked secret (its value is
    masked in job logs whatever its length; shown to anyone who sees the key)."""
    data: dict = {"key": key, "value": value} if reveal else {"key": key}
    if secret:
        data["secret"] = True
    return data


# Output schemas ------------------------------------------------------------------------------


class OwnerOut(Schema):
    id: str
    name: str
    email: str
    type: Literal["user", "team"]
    monthlyBudget: str | None = Field(
        None,
        description="Oneoff: USD a calendar month's jobs may cost (a decimal string); absent "
        "when there is no budget. A job create that would pass it is a 402.",
    )
    monthlySpent: str | None = Field(
        None,
        description="Oneoff, with a budget: this month's spend so far (finished jobs, running "
        "jobs for their time so far, pending jobs for one second).",
    )


class OwnerUpdateIn(Schema):
    monthlyBudget: Decimal | None = Field(
        description="Oneoff: USD per calendar month (UTC), whole cents; null removes the budget.",
        json_schema_extra={"type": ["string", "number", "null"]},
    )


class UserOut(Schema):
    id: str = Field(pattern=r"^own-[0-9a-v]{20}$", description="The user's personal owner id.")
    email: str
    name: str


class OwnerWithCursor(Schema):
    owner: OwnerOut
    cursor: str


class DiskOut(Schema):
    id: str = Field(description="Oneoff: `dsk-` and the service's id (one disk a service).")
    name: str
    mountPath: str
    sizeGB: int | None = None


class EnvSpecificOut(Schema):
    dockerCommand: str = Field(description='Oneoff: always `""` (jobs name their command).')
    dockerfilePath: str = Field(description='`""` for a service built from an image.')
    dockerContext: str = Field(description='`""` for a service built from an image.')


class ServiceDetailsOut(Schema):
    env: str
    runtime: str
    plan: str = Field(description="Render's plan name, e.g. `starter`.")
    planId: str = Field(description="Oneoff: the plan's id, e.g. `plan-srv-006`.")
    region: str = Field(description="Oneoff: the installation's `REGION` setting (a label).")
    buildPlan: Literal["starter"]
    envSpecificDetails: EnvSpecificOut
    numInstances: int | None = Field(None, description="Oneoff: 1 (not for cron jobs).")
    url: str | None = Field(None, description='Oneoff: `""`; web and private services only.')
    openPorts: list[dict] | None = Field(None, description="Oneoff: `[]`.")
    healthCheckPath: str | None = Field(None, description='Oneoff: `""`; web services only.')
    schedule: str | None = Field(None, description="Cron jobs: recorded, not run by Oneoff.")
    disk: DiskOut | None = None


class ServiceOut(Schema):
    id: str
    name: str
    ownerId: str
    type: str = Field(json_schema_extra={"enum": [*SERVICE_TYPES]})
    slug: str
    suspended: Literal["suspended", "not_suspended"]
    suspenders: list[str]
    autoDeploy: Literal["yes", "no"]
    notifyOnFail: str
    rootDir: str
    dashboardUrl: str
    createdAt: str = Field(json_schema_extra=DATETIME)
    updatedAt: str = Field(json_schema_extra=DATETIME)
    serviceDetails: ServiceDetailsOut
    repo: str | None = None
    branch: str | None = None
    imagePath: str | None = None
    registryCredential: RegistryCredentialSummaryOut | None = Field(
        None, description="The credential the image is pulled with (never its token)."
    )
    maxConcurrentJobs: int | None = Field(
        None,
        description="Oneoff: jobs of the service that may run at once; absent when unlimited.",
    )
    maskSecrets: bool | None = Field(
        None,
        description="Oneoff: env var values are replaced by `****` in the service's job logs "
        "(those of 6+ characters, and every value of a key marked `secret`).",
    )


class ServiceWithCursor(Schema):
    service: ServiceOut
    cursor: str


class ServiceCreatedOut(Schema):
    service: ServiceOut
    buildId: str | None = Field(None, description="Oneoff: the service's first build.")


class EnvVarOut(Schema):
    key: str
    value: str | None = Field(None, description="Omitted only with keysOnly=true.")
    secret: bool | None = Field(
        None,
        description="Oneoff: true when the key is marked secret (its value is masked in job "
        "logs whatever its length); absent otherwise.",
    )


class EnvVarWithCursor(Schema):
    envVar: EnvVarOut
    cursor: str


class BuildOut(Schema):
    id: str = Field(pattern=r"^bld-[0-9a-v]{20}$")
    serviceId: str
    status: str = Field(json_schema_extra={"enum": [*BUILD_STATUSES]})
    createdAt: str = Field(json_schema_extra=DATETIME)
    imageId: str | None = Field(None, description="The built image's immutable id (sha256:…).")
    imageDigest: str | None = Field(
        None, description="The registry's digest of the image an image build pulled."
    )
    commitId: str | None = None
    imageUrl: str | None = None
    reason: str | None = None
    startedAt: str | None = Field(None, json_schema_extra=DATETIME)
    finishedAt: str | None = Field(None, json_schema_extra=DATETIME)


class BuildWithCursor(Schema):
    build: BuildOut
    cursor: str


# Input schemas -------------------------------------------------------------------------------


class EnvVarIn(Schema):
    key: str = Field(min_length=1, max_length=256, pattern=EnvVar.KEY_PATTERN)
    value: str | None = Field(None, max_length=ENV_VALUE_MAX)
    generateValue: bool | None = Field(None, description="Render's: a random value instead.")
    secret: bool | None = Field(
        None,
        strict=True,
        description="Oneoff: mask the value in job logs whatever its length (values of 6+ "
        "characters are masked anyway).",
    )


class EnvVarValueIn(Schema):
    value: str | None = Field(None, max_length=ENV_VALUE_MAX)
    generateValue: bool | None = Field(None, description="Render's: a random value instead.")
    secret: bool | None = Field(
        None,
        strict=True,
        description="Oneoff: mask the value in job logs whatever its length (values of 6+ "
        "characters are masked anyway). Left out, the mark stays.",
    )


class ImageIn(Schema):
    imagePath: str = Field(min_length=1, max_length=500)
    ownerId: str | None = Field(None, max_length=64, description="The service's owner.")
    registryCredentialId: str | None = Field(
        None,
        max_length=64,
        description="A registry credential of the same workspace to pull the image with; "
        "null for none. Left out of an update, the service keeps its credential.",
    )


class DiskIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    mountPath: str = Field(min_length=1, max_length=500, pattern=r"^/")
    sizeGB: int = Field(1, ge=1, le=65536)


class EnvSpecificIn(Schema):
    dockerfilePath: str | None = Field(None, min_length=1, max_length=500)
    dockerContext: str | None = Field(None, min_length=1, max_length=500)
    dockerCommand: str | None = Field(None, max_length=4096)


class ServiceDetailsIn(Schema):
    plan: str | None = Field(
        None, max_length=64, description="A Render plan name (`starter`) or a plan id."
    )
    disk: DiskIn | None = None
    envSpecificDetails: EnvSpecificIn | None = None
    schedule: str | None = Field(
        None,
        max_length=200,
        pattern=r"^\S+( \S+){4}$",
        description="Cron jobs: five cron fields. Oneoff records and shows it; it does not run "
        "cron jobs on a schedule.",
    )


class ServiceCreateIn(Schema):
    type: Literal["web_service", "private_service", "background_worker", "cron_job"]
    name: str = Field(min_length=1, max_length=100)
    ownerId: str = Field(max_length=64)
    repo: str | None = Field(None, min_length=1, max_length=500)
    branch: str | None = Field(None, min_length=1, max_length=200)
    image: ImageIn | None = None
    rootDir: str | None = Field(None, max_length=500)
    autoDeploy: Literal["yes", "no"] | None = None
    envVars: list[EnvVarIn] = Field(default_factory=list, max_length=1000)
    serviceDetails: ServiceDetailsIn | None = None
    maskSecrets: bool | None = Field(
        None,
        strict=True,
        description="Oneoff: replace env var values by `****` in job logs as they are stored "
        "(default true). Left out, on.",
    )


class ServiceUpdateIn(Schema):
    maxConcurrentJobs: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="Oneoff: jobs of the service that may run at once (more wait `pending` in "
        "creation order); null removes the limit. Left out, the limit stays.",
    )
    maskSecrets: bool | None = Field(
        None,
        strict=True,
        description="Oneoff: replace env var values by `****` in job logs as they are stored "
        "(default true). Left out, the setting stays.",
    )
    name: str | None = Field(None, min_length=1, max_length=100)
    repo: str | None = Field(None, min_length=1, max_length=500)
    branch: str | None = Field(None, min_length=1, max_length=200)
    image: ImageIn | None = None
    rootDir: str | None = Field(None, max_length=500)
    autoDeploy: Literal["yes", "no"] | None = None
    serviceDetails: ServiceDetailsIn | None = None


class BuildCreateIn(Schema):
    commitId: str | None = Field(None, pattern=r"^[0-9a-fA-F]{4,64}$")
    imageUrl: str | None = Field(None, min_length=1, max_length=500)
    clearCache: Literal["clear", "do_not_clear"] | None = None


class ServiceListQuery(Page):
    """Render's service filters; each list repeated or comma-separated (``api.query``)."""

    name: list[str] | None = Field(None, max_length=100, description="Names.")
    type: list[ServiceTypeName] | None = Field(None, description="Service types.")
    env: list[str] | None = Field(
        None,
        max_length=20,
        description="Runtimes: `docker` (built from a repository) or `image`; other runtimes "
        "match no service here.",
    )
    region: list[str] | None = Field(
        None,
        max_length=20,
        description="Regions: every service is in the installation's `REGION`.",
    )
    suspended: list[Literal["suspended", "not_suspended"]] | None = Field(
        None, description="`suspended`, `not_suspended`."
    )
    ownerId: list[str] | None = Field(None, max_length=100)
    includePreviews: bool | None = Field(
        None, description="Accepted; Oneoff has no preview services."
    )
    createdBefore: datetime | None = None
    createdAfter: datetime | None = None
    updatedBefore: datetime | None = None
    updatedAfter: datetime | None = None


class EnvVarListQuery(Schema):
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=400)
    keysOnly: bool = Field(
        False,
        description="Oneoff: names only, for anyone who may read the service (values are for "
        "admins: without this a developer or viewer gets a 403).",
    )

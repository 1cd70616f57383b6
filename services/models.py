"""Workspaces, members, plans, registry credentials, services, env vars, builds, service events
and API keys."""

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Self

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.text import slugify

from services.crypto import EncryptedTextField
from services.ids import new_id
from services.prepared import Prepared
from services.repo_urls import shown_url, split_credential

SECONDS_PER_MONTH = 30 * 24 * 3600  # prices are per 30-day month, billed per second


class PublicIdField(models.CharField):
    """Primary key holding a public id such as ``srv-c3rfdgg6n88pa7t3a6ag``."""

    def __init__(self, *args: Any, prefix: str = "", **kwargs: Any) -> None:
        self.prefix = prefix
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("primary_key", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, path, args, kwargs = super().deconstruct()
        kwargs["prefix"] = self.prefix
        for key, default in (("max_length", 32), ("primary_key", True), ("editable", False)):
            if kwargs.get(key) == default:
                kwargs.pop(key)
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> str:
        value = getattr(model_instance, self.attname)
        if not value:
            # Without a prefix the model names its own (``Service.id_prefix``: srv- or crn-),
            # which the Model that Field.pre_save is typed with does not declare.
            value = new_id(self.prefix or model_instance.id_prefix())  # type: ignore[attr-defined]
            setattr(model_instance, self.attname, value)
        return value


class Role(models.TextChoices):
    """A member's role; each may do all the next one may. A viewer reads; a developer also
    changes things (runs and cancels jobs, builds); an admin also administers (services, env var
    values, others' API keys, log streams). ``services.access.check_role`` enforces it."""

    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    VIEWER = "viewer", "Viewer"

    @classmethod
    def can_write(cls, role: str | None) -> bool:
        return role in (cls.ADMIN, cls.DEVELOPER)

    @classmethod
    def can_administer(cls, role: str | None) -> bool:
        return role == cls.ADMIN


class WorkspaceQuerySet(models.QuerySet):
    def for_user(self, user: User | AnonymousUser) -> Self:
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Workspace(models.Model):
    id = PublicIdField(prefix="tea")
    name = models.CharField(max_length=100, unique=True)
    email = models.EmailField(blank=True, help_text="Contact address shown as the owner's email.")
    log_retention_days = models.PositiveSmallIntegerField(
        default=7, help_text="Days job and build logs are kept (Render's tiers: 7, 14, 30)."
    )
    # What the workspace's jobs may cost in a calendar month (UTC), in USD; None: no limit. A
    # create that would pass it is refused (jobs.budget); running jobs are never stopped by it.
    monthly_budget = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="USD per month."
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = WorkspaceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DEVELOPER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    @property
    def can_write(self) -> bool:
        return Role.can_write(self.role)

    @property
    def is_admin(self) -> bool:
        return Role.can_administer(self.role)


class PlanKind(models.TextChoices):
    SRV = "srv", "Web, private and background worker services"
    CRON = "cron", "Cron jobs"


class Plan(models.Model):
    """An instance type. Prices are monthly (30 days); jobs are billed per second."""

    id = models.CharField(max_length=32, primary_key=True)
    name = models.CharField(max_length=50)
    kind = models.CharField(max_length=8, choices=PlanKind.choices)
    memory_mb = models.PositiveIntegerField()
    cpu = models.DecimalField(max_digits=6, decimal_places=2, help_text="Cores; may be fractional.")
    price_monthly = models.DecimalField(
        max_digits=10, decimal_places=2, help_text="USD per 30-day month; 0 makes it a free plan."
    )

    class Meta:
        ordering = ["kind", "memory_mb", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def is_free(self) -> bool:
        return self.price_monthly <= 0

    @property
    def rate_per_second(self) -> Decimal:
        return self.price_monthly / SECONDS_PER_MONTH

    def cost_of(self, seconds: int) -> Decimal:
        return (self.rate_per_second * seconds).quantize(Decimal("0.000001"), ROUND_HALF_UP)

    @property
    def specs(self) -> str:
        memory = (
            f"{self.memory_mb // 1024} GB" if self.memory_mb >= 1024 else f"{self.memory_mb} MB"
        )
        return f"{memory} RAM, {self.cpu.normalize()} CPU"


class RegistryKind(models.TextChoices):
    """Render's registry kinds (``registryCredentialRegistry``). Oneoff sends a credential to
    the registry host its service's ``imagePath`` names; ``DOCKER`` also covers a self-hosted
    registry."""

    GITHUB = "GITHUB", "GitHub Container Registry"
    GITLAB = "GITLAB", "GitLab Container Registry"
    DOCKER = "DOCKER", "Docker Hub or another Docker registry"
    GOOGLE_ARTIFACT = "GOOGLE_ARTIFACT", "Google Artifact Registry"
    AWS_ECR = "AWS_ECR", "AWS Elastic Container Registry"


class RegistryCredential(models.Model):
    """A workspace's login to a private image registry (Render's registry credential). The
    token is encrypted at rest and write-only: no output shows it, ``str`` and ``repr`` name
    the credential, and only ``auth_config`` (for the engine's pull) reads it."""

    id = PublicIdField(prefix="rgc")
    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="registry_credentials")
    name = models.CharField(max_length=100)
    registry = models.CharField(max_length=16, choices=RegistryKind.choices)
    username = models.CharField(max_length=200)
    auth_token = EncryptedTextField(help_text="Password or access token, encrypted at rest.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"], name="registry_credential_name_per_workspace"
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at", "-id"], name="registry_cred_list")
        ]

    def __str__(self) -> str:
        return self.name

    def auth_config(self) -> dict[str, str]:
        """docker-py's ``auth_config`` for a pull of the service's image."""
        return {"username": self.username, "password": self.auth_token}


class RepoSource:
    """For a model with ``repo_url`` and ``repo_credential``: user info never stays in the URL."""

    repo_url: str
    repo_credential: str

    @property
    def repo_shown(self) -> str:
        """The repository URL for every output: ``https://***@host/…`` when a credential is set."""
        return shown_url(self.repo_url, self.repo_credential)

    def split_repo_url(self, update_fields: Any) -> Any:
        """Move any user info out of ``repo_url`` into ``repo_credential`` before a save;
        returns the save's ``update_fields`` with the credential added when the URL is saved."""
        url, credential = split_credential(self.repo_url)
        if not credential:
            return update_fields
        self.repo_url, self.repo_credential = url, credential
        if update_fields is not None and "repo_url" in update_fields:
            update_fields = {*update_fields, "repo_credential"}
        return update_fields


class ServiceType(models.TextChoices):
    WEB_SERVICE = "web_service", "Web service"
    PRIVATE_SERVICE = "private_service", "Private service"
    BACKGROUND_WORKER = "background_worker", "Background worker"
    CRON_JOB = "cron_job", "Cron job"


class ServiceQuerySet(models.QuerySet):
    def for_user(self, user: User | AnonymousUser) -> Self:
        if not user.is_authenticated:
            return self.none()
        return self.filter(workspace__memberships__user=user)


class LiveServiceManager(models.Manager["Service"]):
    """``Service.objects`` (and ``workspace.services``): services not deleted. A deleted
    service is kept (``deleted_at``) so its jobs and their logs stay readable by job id; every
    list and lookup of services goes through this manager and so never sees it. Only
    ``Service.all_objects`` (and a job's or build's ``.service``, through the base manager) do."""

    def get_queryset(self) -> ServiceQuerySet:
        return ServiceQuerySet(self.model, using=self._db).filter(deleted_at__isnull=True)

    def for_user(self, user: User | AnonymousUser) -> ServiceQuerySet:
        return self.get_queryset().for_user(user)


class Service(RepoSource, models.Model):
    id = PublicIdField()
    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="services")
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=32, choices=ServiceType.choices)
    plan = models.ForeignKey(Plan, models.PROTECT, related_name="services")
    # Build source: an image reference, or a git repository with branch, Dockerfile and context.
    image_ref = models.CharField(max_length=500, blank=True)
    repo_url = models.CharField(max_length=500, blank=True, help_text="Without its user info.")
    repo_credential = EncryptedTextField(
        blank=True, default="", help_text="The URL's user info (user:token), encrypted at rest."
    )
    branch = models.CharField(max_length=200, blank=True)
    root_dir = models.CharField(max_length=500, blank=True)
    dockerfile_path = models.CharField(max_length=500, blank=True, default="./Dockerfile")
    docker_context = models.CharField(max_length=500, blank=True, default=".")
    # A persistent disk is never mounted into jobs; it is recorded so the API can say so.
    disk_name = models.CharField(max_length=100, blank=True)
    disk_mount_path = models.CharField(max_length=500, blank=True)
    disk_size_gb = models.PositiveIntegerField(null=True, blank=True)
    # The login for pulling ``image_ref`` (a credential of the same workspace). Deleting the
    # credential unlinks it, as Render's delete does (it answers no conflict for one in use).
    registry_credential = models.ForeignKey(
        RegistryCredential, models.SET_NULL, null=True, blank=True, related_name="services"
    )
    # A cron job's schedule, as Render's API takes it. Oneoff records and shows it; it does not
    # run cron jobs on a schedule (their jobs are one-off runs of their build).
    schedule = models.CharField(max_length=200, blank=True)
    suspended = models.BooleanField(default=False)
    auto_deploy = models.BooleanField(default=False)
    # Jobs of this service that may run at once (None: no limit); more wait ``pending`` in
    # creation order and start as others end (jobs.runner.claim_slot).
    max_concurrent_jobs = models.PositiveIntegerField(null=True, blank=True)
    # Env values in the service's job logs are replaced by ``****`` as they are stored
    # (jobs.logs.mask); off for a service whose logs must show them.
    mask_secrets = models.BooleanField(
        default=True, help_text="Mask env var values in job logs as they are stored."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Set by DELETE /v1/services/{id} (api.routers.services): gone from every list and lookup,
    # its jobs and their logs still readable by job id (logs until their retention date).
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = LiveServiceManager()
    all_objects = ServiceQuerySet.as_manager()

    # Read by ``services.access.service_for``'s query: the reader's role in the workspace.
    member_role: str

    class Meta:
        ordering = ["-created_at", "-id"]
        # A job's or a build's ``.service`` reaches its service even once deleted.
        base_manager_name = "all_objects"
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"],
                condition=models.Q(deleted_at__isnull=True),
                name="service_name_per_workspace",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        kwargs["update_fields"] = self.split_repo_url(kwargs.get("update_fields"))
        super().save(*args, **kwargs)

    def id_prefix(self) -> str:
        return "crn" if self.type == ServiceType.CRON_JOB else "srv"

    @property
    def plan_kind(self) -> str:
        return PlanKind.CRON if self.type == ServiceType.CRON_JOB else PlanKind.SRV

    @property
    def slug(self) -> str:
        return slugify(self.name) or self.id

    def valid_plans(self) -> models.QuerySet[Plan]:
        return Plan.objects.filter(kind=self.plan_kind)

    def latest_successful_build(self) -> "Build | None":
        found = _LATEST_BUILD.run(service_id=self.pk)  # every job create: compiled once
        return found[0] if found else None

    def current_deploy(self) -> "tuple[Build | None, Deploy | None]":
        """What new jobs run: the service's current artifact, and the deploy that made it
        current (None for a build no deploy records, made before deploys existed).

        A successful build becomes current when it finishes; a deploy of an existing build (a
        rollback, or Render's ``buildId`` / ``deployMode: deploy_only``) when it is made. The
        latest of these events wins: without such deploys this is ``latest_successful_build``,
        as before deploys existed."""
        latest, redeploy = self._current()
        if redeploy is not None:
            return redeploy.build, redeploy
        if latest is None:
            return None, None
        first = latest.deploys.filter(reuses_build=False).order_by("created_at", "id").first()
        return latest, first

    def current_build(self) -> "Build | None":
        """The build new jobs run (``current_deploy``'s, without looking up its deploy)."""
        latest, redeploy = self._current()
        return redeploy.build if redeploy is not None else latest

    def _current(self) -> "tuple[Build | None, Deploy | None]":
        """The latest successful build, and the deploy of an existing build that came after it
        (None when there is none, or the build came later): that deploy's build is current."""
        latest = self.latest_successful_build()
        found = _LATEST_REDEPLOY.run(service_id=self.pk)
        redeploy = found[0] if found else None
        if redeploy is not None and (
            latest is None or latest.finished_at is None or redeploy.created_at > latest.finished_at
        ):
            return latest, redeploy
        return latest, None

    def env_dict(self) -> dict[str, str]:
        return {var.key: var.value for var in self.env_vars.order_by("key")}

    def env_with_secret_keys(self) -> tuple[dict[str, str], list[str]]:
        """``env_dict`` and ``secret_keys`` from one query (a job's env snapshot takes both)."""
        env = list(self.env_vars.order_by("key").only("key", "value", "secret"))
        return {var.key: var.value for var in env}, [var.key for var in env if var.secret]

    def secret_keys(self) -> list[str]:
        """The keys of env vars marked secret, sorted."""
        return list(self.env_vars.filter(secret=True).order_by("key").values_list("key", flat=True))


class EnvVar(models.Model):
    # The key rule, for the API's schemas and the dashboard's form alike.
    KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
    KEY_RULE = "must start with a letter or _, then letters, digits, _ . or -"
    # Values may hold any text but control characters: NUL (which no process environment can
    # carry, and which the engine echoes back in its error) and the other C0 controls and DEL.
    # Tab, newline and carriage return stay allowed: multi-line values (PEM keys) are common.
    VALUE_ALLOWED_CONTROLS = "\t\n\r"
    # Values this short are not hidden from errors: "****" in place of every "1" would say more.
    SCRUB_MIN_CHARS = 4

    service = models.ForeignKey(Service, models.CASCADE, related_name="env_vars")
    key = models.CharField(max_length=256)
    value = EncryptedTextField(blank=True)
    # A secret's value is masked in job logs whatever its length (others from MASK_MIN_CHARS).
    secret = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["service", "key"], name="env_key_per_service")
        ]

    def __str__(self) -> str:
        return self.key

    def clean(self) -> None:
        problem = self.value_problem(self.value)
        if problem:
            raise ValidationError({"value": f"{self.key}: {problem}"})

    @classmethod
    def value_problem(cls, value: str) -> str:
        """Why ``value`` cannot be an env value ("" when it can); the API and both forms ask."""
        for char in value:
            if (char < " " or char == "\x7f") and char not in cls.VALUE_ALLOWED_CONTROLS:
                return (
                    f"the value contains the control character U+{ord(char):04X}; "
                    "only tab, newline and carriage return are allowed"
                )
        return ""

    @classmethod
    def scrub(cls, text: str, values: Iterable[str]) -> str:
        """``text`` with every env value of at least SCRUB_MIN_CHARS characters replaced by
        ``****``: for engine and git errors stored where viewers (who may not read values) see
        them. Also as Go's ``%q`` and JSON quote it (the engine echoes ``"K=sec\\x00ret"``).
        Longest first, so a value containing another is hidden whole."""
        forms = {
            form
            for value in values
            if len(value) >= cls.SCRUB_MIN_CHARS
            for form in (value, _quoted(value), json.dumps(value, ensure_ascii=False)[1:-1])
        }
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "****")
        return text


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def _quoted(value: str) -> str:
    """``value`` inside Go's ``%q`` quotes, as engine errors print it."""
    return "".join(
        _GO_ESCAPES.get(char) or (f"\\x{ord(char):02x}" if char < " " or char == "\x7f" else char)
        for char in value
    )


class BuildStatus(models.TextChoices):
    QUEUED = "queued"
    BUILDING = "building"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


BUILD_FINISHED = (BuildStatus.SUCCEEDED, BuildStatus.FAILED, BuildStatus.CANCELED)


class Build(RepoSource, models.Model):
    id = PublicIdField(prefix="bld")
    service = models.ForeignKey(Service, models.CASCADE, related_name="builds")
    status = models.CharField(max_length=16, choices=BuildStatus.choices, default="queued")
    # What was asked for.
    image_ref = models.CharField(max_length=500, blank=True)
    repo_url = models.CharField(max_length=500, blank=True, help_text="Without its user info.")
    repo_credential = EncryptedTextField(
        blank=True, default="", help_text="The URL's user info (user:token), encrypted at rest."
    )
    branch = models.CharField(max_length=200, blank=True)
    commit_id = models.CharField(max_length=64, blank=True)
    commit_message = models.TextField(blank=True)
    # What was made: the immutable image id (sha256:...), never a tag.
    image_id = models.CharField(max_length=100, blank=True)
    image_tag = models.CharField(max_length=200, blank=True)
    image_digest = models.CharField(
        max_length=100, blank=True, help_text="The registry's digest of a pulled image."
    )
    registry_image = models.CharField(
        max_length=500,
        blank=True,
        help_text="The image in JOB_REGISTRY by digest (<registry>/ws-<workspace>/<service>@"
        "sha256:…), which every runner host pulls; empty without a job registry.",
    )
    reason = models.TextField(blank=True, help_text="Why the build failed or was canceled.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    logs_purged_at = models.DateTimeField(null=True, blank=True)
    image_removed_at = models.DateTimeField(
        null=True, blank=True, help_text="When cleanup removed this build's image tag."
    )
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life from the worker running the build."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["service", "-created_at", "-id"], name="build_list")]

    def __str__(self) -> str:
        return self.id

    def save(self, *args: Any, **kwargs: Any) -> None:
        kwargs["update_fields"] = self.split_repo_url(kwargs.get("update_fields"))
        super().save(*args, **kwargs)

    @property
    def job_image(self) -> str:
        """What a job of this build runs: the image in JOB_REGISTRY by digest when the build
        was pushed there (any host can pull it), else the engine's image id."""
        return self.registry_image or self.image_id

    @property
    def is_finished(self) -> bool:
        return self.status in BUILD_FINISHED


class DeployTrigger(models.TextChoices):
    """Why a deploy was made: values of Render's ``deployTrigger``."""

    API = "api", "API"
    MANUAL = "manual", "Dashboard"
    NEW_COMMIT = "new_commit", "New commit"
    ROLLBACK = "rollback", "Rollback"
    OTHER = "other", "Other"


class Deploy(models.Model):
    """Render's deploy: a build, and making it the service's current artifact (what new jobs
    run). A build's own deploy is made with it (``services.builds.queue.request_build``) and
    is live once the build succeeded, until a later one is; a deploy of an existing build
    (``reuses_build``: a rollback, Render's ``buildId`` or ``deployMode: deploy_only``) is live
    as it is made. ``Service.current_deploy`` decides which one is live; the status is
    ``services.deploys.status_of``."""

    id = PublicIdField(prefix="dep")
    service = models.ForeignKey(Service, models.CASCADE, related_name="deploys")
    build = models.ForeignKey(Build, models.CASCADE, related_name="deploys")
    trigger = models.CharField(max_length=32, choices=DeployTrigger.choices)
    reuses_build = models.BooleanField(
        default=False, help_text="Deploys an existing build (no build of its own)."
    )
    rollback_of = models.ForeignKey(
        "self",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The earlier deploy a rollback went back to.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["service", "-created_at", "-id"], name="deploy_list")]

    def __str__(self) -> str:
        return self.id


class BuildLogLine(models.Model):
    id = models.BigAutoField(primary_key=True)
    build = models.ForeignKey(Build, models.CASCADE, related_name="log_lines", db_index=False)
    seq = models.PositiveIntegerField()
    timestamp = models.DateTimeField()
    text = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["build", "seq"], name="build_log_seq"),
        ]
        # Render's logs API pages a build's (or a service's builds') lines by time.
        indexes = [models.Index(fields=["build", "timestamp"], name="build_log_time")]

    def __str__(self) -> str:
        return f"{self.build_id}#{self.seq}"


class ServiceEvent(models.Model):
    """Something that happened to a service (Render's service event, ``evt-…``): a job or build
    that ended, a build that started, a suspend or resume. Written by ``services.events.emit``
    in the transaction of the change; ``details`` is Render's details object for ``type``. The
    job or build is named in ``details`` only (no foreign key), so its events outlive it. Kept for
    the workspace's log retention period (``services.events.purge_expired``)."""

    id = PublicIdField(prefix="evt")
    service = models.ForeignKey(Service, models.CASCADE, related_name="events")
    type = models.CharField(max_length=40)
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["service", "-created_at", "-id"], name="service_event_list"),
            models.Index(fields=["created_at"], name="service_event_age"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> Self:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A bearer key for one user in one workspace. Only a hash of the secret is stored."""

    PREFIX = "oneoff_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="api_keys")
    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(
        max_length=16, help_text="The key's first characters, to recognise it."
    )
    key_hash = models.CharField(max_length=64, unique=True)
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    # Read by ``authenticate``'s query: the user's role in the key's workspace, None once they
    # left it. The API copies it to ``role`` once it has checked that it is not None.
    member_role: str | None
    role: str

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def hash(secret: str) -> str:
        # The secret has 256 bits of entropy, so a fast keyed hash is enough (no password KDF).
        return hmac.new(settings.SECRET_KEY.encode(), secret.encode(), hashlib.sha256).hexdigest()

    @classmethod
    def issue(
        cls, user: User, workspace: Workspace, *, name: str = "", read_only: bool = False
    ) -> "tuple[ApiKey, str]":
        """Create a key; returns (ApiKey, secret). The secret is never stored or shown again."""
        secret = cls.PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            user=user,
            workspace=workspace,
            name=name,
            prefix=secret[: len(cls.PREFIX) + 6],
            key_hash=cls.hash(secret),
            read_only=read_only,
        )
        return key, secret

    @classmethod
    def authenticate(cls, secret: str) -> "ApiKey | None":
        """The live key for a secret (not revoked, its user active), or None, with
        ``member_role``, the user's role in the key's workspace (None once they left it), read
        in the same query. The lookup is by a hash of the secret, and the stored hash is
        compared again in constant time."""
        digest = cls.hash(secret)
        found = _KEY_BY_HASH.run(digest=digest)  # every API request: compiled once
        key = found[0] if found else None
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            return None
        if not key.user.is_active:
            return None
        return key

    def touch(self) -> None:
        """Record use, at most once a minute per key to keep reads cheap."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > timedelta(minutes=1):
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


def _key_by_hash(shape: object, digest: str) -> models.QuerySet[ApiKey]:
    """``ApiKey.authenticate``'s query: the live key of a hash, its user and workspace, and the
    user's role in that workspace (``member_role``, None once they left it)."""
    role = Membership.objects.filter(
        user_id=models.OuterRef("user_id"), workspace_id=models.OuterRef("workspace_id")
    ).values("role")[:1]
    # django-stubs takes an annotation of the declared ``member_role`` for a clash
    # (typeddjango/django-stubs#2818); it is exactly what fills it.
    return (
        ApiKey.objects.active()
        .select_related("user", "workspace")
        .annotate(member_role=models.Subquery(role))  # type: ignore[no-redef]
        .filter(key_hash=digest)
        .order_by()[:1]
    )


_KEY_BY_HASH = Prepared(_key_by_hash)

# What a job create reads to find the build it runs (``Service._current``), compiled once.
_LATEST_BUILD = Prepared(
    lambda shape, *, service_id: Build.objects.filter(
        service_id=service_id, status=BuildStatus.SUCCEEDED
    ).order_by("-finished_at", "-id")[:1]
)
_LATEST_REDEPLOY = Prepared(
    lambda shape, *, service_id: (
        Deploy.objects.filter(
            service_id=service_id, reuses_build=True, build__status=BuildStatus.SUCCEEDED
        )
        .select_related("build")
        .order_by("-created_at", "-id")[:1]
    )
)

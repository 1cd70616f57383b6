"""Deploys in Render's terms: a build, and making it the service's current artifact.

A build's own deploy is made with it (``builds.queue.request_deploy``); ``redeploy`` makes a
deploy of an existing successful build (a rollback, Render's ``buildId``, or ``deployMode:
deploy_only``), live at once. Which deploy is live is ``Service.current_deploy``; new jobs run
its build (``jobs.launch.create_job``), jobs already created keep theirs.

Statuses are Render's ``deployStatus``, from the build's state: ``queued`` (the build waits),
``build_in_progress``, ``build_failed``, ``canceled``; a deploy whose build succeeded is
``live`` while it is the service's current one and ``deactivated`` once another took over.
Oneoff has no pre-deploy command and no instances to update, so the other values of Render's
enum never occur.
"""

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Case, CharField, F, QuerySet, Value, When
from django.db.models.functions import Coalesce, Greatest

from services import events
from services.errors import Invalid, NotFound, Refused
from services.models import Build, BuildStatus, Deploy, DeployTrigger, Service

LIVE, DEACTIVATED = "live", "deactivated"
BUILD_STATES = {
    BuildStatus.QUEUED: "queued",
    BuildStatus.BUILDING: "build_in_progress",
    BuildStatus.FAILED: "build_failed",
    BuildStatus.CANCELED: "canceled",
}
STATUSES = ["queued", "build_in_progress", "build_failed", "canceled", LIVE, DEACTIVATED]
IN_PROGRESS = ("queued", "build_in_progress")


def status_of(deploy: Deploy, live_id: str | None) -> str:
    """Render's status of ``deploy`` (its ``build`` loaded), given the service's live deploy."""
    if deploy.build.status == BuildStatus.SUCCEEDED:
        return LIVE if deploy.pk == live_id else DEACTIVATED
    return BUILD_STATES[BuildStatus(deploy.build.status)]


def live_id(service: Service) -> str | None:
    """The id of the service's live deploy, if any."""
    deploy = service.current_deploy()[1]
    return deploy.pk if deploy is not None else None


def deploys_of(service: Service, live: str | None) -> QuerySet[Deploy]:
    """The service's deploys with ``status`` (Render's) and ``updated`` (its last change: made,
    build started or finished) computed in the query, so lists can filter on them."""
    status = Case(
        When(build__status=BuildStatus.SUCCEEDED, pk=live or "", then=Value(LIVE)),
        When(build__status=BuildStatus.SUCCEEDED, then=Value(DEACTIVATED)),
        *(When(build__status=k, then=Value(v)) for k, v in BUILD_STATES.items()),
        output_field=CharField(),
    )
    made = F("created_at")
    updated = Case(
        When(reuses_build=True, then=made),
        default=Greatest(
            made,
            Coalesce("build__started_at", made),
            Coalesce("build__finished_at", made),
        ),
    )
    finished = Case(When(reuses_build=True, then=made), default=F("build__finished_at"))
    return (
        Deploy.objects.filter(service=service)
        .select_related("build")
        .annotate(status=status, updated=updated, finished=finished)
    )


def redeploy(
    service: Service,
    build: Build,
    *,
    trigger: str,
    user: User | AnonymousUser | None = None,
    rollback_of: Deploy | None = None,
    field: str = "buildId",
) -> Deploy:
    """Make an existing successful build of the service the one new jobs run: a new deploy,
    live at once. Refused for a build that did not succeed or whose image cleanup removed."""
    if build.service_id != service.pk:
        raise NotFound("build")
    if build.status != BuildStatus.SUCCEEDED:
        raise Invalid(field, f"build {build.id} is {build.status}; only a successful one deploys")
    if build.image_removed_at is not None:
        raise Refused(
            f"the image of build {build.id} was removed by image cleanup on "
            f"{build.image_removed_at:%Y-%m-%d}; it cannot be deployed again"
        )
    who = user if user is not None and user.is_authenticated else None
    with transaction.atomic():
        # The service's row lock orders this against a job create reading the current build.
        Service.objects.select_for_update().filter(pk=service.pk).first()
        deploy = Deploy.objects.create(
            service=service,
            build=build,
            trigger=trigger,
            reuses_build=True,
            rollback_of=rollback_of,
            created_by=who,
        )
        with events.on_its_own(f"deploy {deploy.pk}"):
            events.deploy_started(deploy)
        return deploy


def rollback(
    service: Service, deploy_id: str, *, user: User | AnonymousUser | None = None
) -> Deploy:
    """Render's rollback: a new deploy (trigger ``rollback``) of an earlier successful
    deploy's build, live at once."""
    target = Deploy.objects.filter(service=service, pk=deploy_id).select_related("build").first()
    if target is None:
        raise Invalid("deployId", f"no deploy {deploy_id!r} of this service")
    if target.build.status != BuildStatus.SUCCEEDED:
        raise Invalid(
            "deployId",
            f"deploy {target.id} did not succeed (its build is {target.build.status}); "
            "only a successful deploy can be rolled back to",
        )
    return redeploy(
        service,
        target.build,
        trigger=DeployTrigger.ROLLBACK,
        user=user,
        rollback_of=target,
        field="deployId",
    )

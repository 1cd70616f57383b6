"""The one way to create or cancel a job, used by the API and the dashboard alike."""

import logging
import re
from collections.abc import Iterable

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from audit.trail import Actor, record
from jobs import budget, reasons
from jobs.models import UNFINISHED, EnvSnapshot, Job, JobStatus
from services.builds.queue import cancel_build
from services.errors import Invalid, NotFound, Refused
from services.models import Build, BuildStatus, EnvVar, Plan, Service, Workspace
from services.prepared import Prepared
from services.transitions import transition

logger = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 64 * 1024
MAX_ENV_OVERRIDES = 100
ENV_VALUE_MAX = 64 * 1024


def check_timeout(timeout_seconds: int | None) -> int | None:
    """A job's own timeout: whole seconds, at least 1, at most JOB_MAX_RUNTIME."""
    if timeout_seconds is None:
        return None
    if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int):
        raise Invalid("timeoutSeconds", "must be a whole number of seconds")
    if timeout_seconds < 1:
        raise Invalid("timeoutSeconds", "must be at least 1")
    if timeout_seconds > settings.JOB_MAX_RUNTIME:
        raise Invalid(
            "timeoutSeconds",
            f"must be at most JOB_MAX_RUNTIME ({settings.JOB_MAX_RUNTIME} s) on this Oneoff",
        )
    return timeout_seconds


def check_env_overrides(pairs: Iterable[tuple[str, str]] | None) -> dict[str, str]:
    """A job's env overrides as ``{key: value}``, by the env var API's rules (key pattern and
    length, no control characters in values); ``envVars[i].key`` names a bad one."""
    overrides: dict[str, str] = {}
    for index, (key, value) in enumerate(pairs or ()):
        field = f"envVars[{index}]"
        if index >= MAX_ENV_OVERRIDES:
            raise Invalid("envVars", f"at most {MAX_ENV_OVERRIDES} env var overrides")
        if not isinstance(key, str) or len(key) > 256 or not re.fullmatch(EnvVar.KEY_PATTERN, key):
            raise Invalid(f"{field}.key", f"{EnvVar.KEY_RULE} (at most 256 characters)")
        if key in overrides:
            raise Invalid(f"{field}.key", f"duplicate key {key!r}")
        if not isinstance(value, str) or len(value) > ENV_VALUE_MAX:
            raise Invalid(f"{field}.value", f"must be text of at most {ENV_VALUE_MAX} characters")
        problem = EnvVar.value_problem(value)
        if problem:
            raise Invalid(f"{field}.value", f"env var {key!r}: {problem}")
        overrides[key] = value
    return overrides


def resolve_plan(service: Service, plan_id: str | None) -> Plan:
    if not plan_id:
        plan = service.plan
        if plan.is_free:
            raise Invalid("planId", "free tier plans are not supported for jobs")
        return plan
    valid = list(service.valid_plans().exclude(price_monthly__lte=0))
    valid_ids = ", ".join(p.id for p in valid)
    chosen = next((p for p in valid if p.id == plan_id), None)
    if chosen is None:
        kind = "cron job" if service.plan_kind == "cron" else service.get_type_display().lower()
        raise Invalid(
            "planId", f"{plan_id!r} is not valid for a {kind} service; valid plan ids: {valid_ids}"
        )
    return chosen


# A job create's first read, compiled once (``services.prepared``): the service, locked so a
# concurrent env change or build lands wholly before or after the create, with its plan and
# workspace (unlocked: other creates in the workspace never wait for this one). A deleted
# service is gone (``Service.objects`` never returns one).
_LOCKED_SERVICE = Prepared(
    lambda shape, *, pk: (
        Service.objects.select_related("plan", "workspace")
        .select_for_update(of=("self",))
        .filter(pk=pk)[:1]
    )
)


def create_job(
    service: Service,
    start_command: str,
    plan_id: str | None = None,
    *,
    user: User | AnonymousUser | None = None,
    timeout_seconds: int | None = None,
    env_overrides: Iterable[tuple[str, str]] | None = None,
    rerun_of: Job | None = None,
    exact: bool = False,
    actor: Actor | None = None,
) -> Job:
    """Snapshot the service's current build (``Service.current_build``: its latest successful
    build, or after a rollback the build rolled back to) and all its env vars, in one
    transaction, and start the job once that transaction commits.

    Opt-in overrides: ``timeout_seconds`` (the job's own runtime limit, at most
    JOB_MAX_RUNTIME) and ``env_overrides`` (``(key, value)`` pairs added to, or replacing, the
    service's env vars in this job's snapshot only). A workspace with a monthly budget gets no
    job it has no room for (``jobs.budget``: ``OverBudget``).

    A rerun names its original (``rerun_of``, a job of the same service). ``exact`` runs the
    original's build and env snapshot instead of the latest ones (an exact rerun takes no env
    overrides: its env is the original's, whole); it is refused once the build's image is gone.

    With an ``actor``, the audit trail records ``job.create`` (``job.rerun`` with ``rerun_of``),
    naming the overrides' keys, never their values."""
    if not isinstance(start_command, str) or not start_command.strip():
        raise Invalid("startCommand", "must be a non-empty string")
    if len(start_command.encode()) > MAX_COMMAND_BYTES:
        raise Invalid("startCommand", "must be at most 65536 bytes")
    if "\x00" in start_command:
        raise Invalid("startCommand", "must not contain NUL characters")
    timeout_seconds = check_timeout(timeout_seconds)
    overrides = check_env_overrides(env_overrides)
    if exact and rerun_of is None:
        raise Invalid("exact", "an exact run needs rerunOf: the job whose image and env it reruns")
    if rerun_of is not None and rerun_of.service_id != service.pk:
        raise Invalid("rerunOf", "must be a job of this service")
    if exact and overrides:
        raise Invalid(
            "envVars",
            "an exact rerun runs its original's env snapshot as it was; leave envVars out, or "
            "rerun on latest",
        )
    with transaction.atomic():
        found = _LOCKED_SERVICE.run(pk=service.pk)  # locked till the create commits
        if not found:
            raise NotFound("service")
        service = found[0]
        plan = resolve_plan(service, plan_id)
        if service.workspace.monthly_budget is not None:
            # The workspace's row lock makes "what is spent" and this create one step: two
            # creates racing for the room of one job never both pass.
            workspace = Workspace.objects.select_for_update().get(pk=service.workspace_id)
            budget.check(workspace, plan)
        if exact:
            assert rerun_of is not None
            build, env_snapshot = exact_image_of(rerun_of), rerun_of.env_snapshot
            override_keys = list(rerun_of.env_override_keys)
        else:
            current = service.current_build()
            if current is None:
                raise Refused(
                    f"service {service.id} has no successful build yet, so it cannot run jobs; "
                    "deploy it first (POST /v1/services/{serviceId}/deploys)"
                )
            build = current
            env_snapshot = EnvSnapshot.capture(service, overrides)
            override_keys = sorted(overrides)
        job = Job.objects.create(
            workspace_id=service.workspace_id,
            service=service,
            start_command=start_command,
            plan=plan,
            build=build,
            env_snapshot=env_snapshot,
            created_by=user if user is not None and user.is_authenticated else None,
            timeout_seconds=timeout_seconds,
            env_override_keys=override_keys,
            rerun_of=rerun_of,
            exact=exact,
        )
        details: dict[str, object] = {"service": service.id, "plan": plan.id, "build": build.id}
        if rerun_of is not None:
            details["rerunOf"] = rerun_of.id
            details["exact"] = exact
        if overrides:
            details["envOverrideKeys"] = sorted(overrides)
        record(
            actor,
            service.workspace_id,
            "job.rerun" if rerun_of is not None else "job.create",
            target_type="job",
            target_id=job.id,
            metadata=details,
        )
        transaction.on_commit(lambda: enqueue_start(job.id))
    return job


def exact_image_of(original: Job) -> Build:
    """The build an exact rerun of ``original`` runs: its own, while image cleanup has kept its
    image (it keeps the images of jobs within their workspace's log retention period,
    ``services.builds.queue.cleanup_images``)."""
    build = Build.objects.get(pk=original.build_id)
    if build.image_removed_at is not None:
        when = f" on {build.image_removed_at:%Y-%m-%d}" if build.image_removed_at else ""
        raise Refused(
            f"job {original.id} cannot be rerun exactly: the image of its build {build.id} was "
            f"removed{when} by image cleanup (images are kept while their jobs' logs are); "
            "rerun it on the latest build instead"
        )
    return build


def enqueue_start(job_id: str) -> bool:
    """Send a start message for a job, recording when (``Job.start_enqueued_at``: the sweep sends
    another only once that is old). Never raises: it runs after the job's row committed, so a
    broker (or database) that does not answer must not turn a created job into an error; the job
    stays pending and the sweep (runner.sweep) starts it once the broker answers again. Returns
    whether the message was sent."""
    from django.db import DatabaseError

    try:
        Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(
            start_enqueued_at=timezone.now()
        )
    except DatabaseError as exc:
        logger.warning("job %s: could not record its start message: %s", job_id, exc)
    try:
        current_app.send_task("jobs.tasks.start_job", args=[job_id])
        return True
    except Exception as exc:  # kombu's OperationalError, a socket error, a timeout…
        logger.warning(
            "job %s: the broker did not take its start message (%s); the sweep will send it",
            job_id,
            exc,
        )
    try:  # the message is not out: the next sweep may send one straight away
        Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(start_enqueued_at=None)
    except DatabaseError:
        logger.debug("job %s: could not clear start_enqueued_at", job_id, exc_info=True)
    return False


def cancel_job(
    job: Job, *, user: User | AnonymousUser | None = None, actor: Actor | None = None
) -> Job:
    """Cancel a job. Pending and never claimed by a runner: canceled at once, it never starts.
    Claimed (a runner may have created its container: a start in progress, or one cut short by a
    worker crash or a database error) or running: a request the runner carries out. It stops the
    container if there is one (SIGTERM, then SIGKILL after JOB_STOP_GRACE), stores its logs,
    bills the time it ran, and only then records ``canceled``; a claimed job that has no container
    is canceled by its next start message (sent here) without ever starting. Canceled:
    unchanged. Succeeded or failed: refused. With an ``actor``, the audit trail records
    ``job.cancel`` when the cancel did something (not for an already canceled job)."""
    who = user if user is not None and user.is_authenticated else None
    now = timezone.now()
    with transaction.atomic():  # the change and its audit entry, together
        stopped = transition(
            Job.objects.filter(pk=job.pk, status=JobStatus.PENDING, claimed_at__isnull=True),
            status=JobStatus.CANCELED,
            finished_at=now,
            canceled_by=who,
            cancel_requested_at=now,
            reason=reasons.canceled_by(who),
            billed_seconds=0,
            cost=0,
        )
        asked = 0
        if not stopped:
            asked = Job.objects.filter(
                pk=job.pk, status__in=UNFINISHED, cancel_requested_at__isnull=True
            ).update(cancel_requested_at=now, canceled_by=who)
            if asked and Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).exists():
                # The runner finds out whether a container exists, and acts on it.
                transaction.on_commit(lambda: enqueue_start(job.pk))
        if stopped or asked:
            record(
                actor,
                job.workspace_id,
                "job.cancel",
                target_type="job",
                target_id=job.pk,
                metadata={"service": job.service_id, "stopped": "at once" if stopped else "asked"},
            )
    job.refresh_from_db()
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise Refused(
            f"job {job.id} has already {job.status}; only unfinished jobs can be canceled"
        )
    return job


def delete_service(
    service: Service, *, user: User | AnonymousUser | None = None, actor: Actor | None = None
) -> list[str]:
    """Delete a service (Render's ``DELETE /v1/services/{id}``); returns the ids of the jobs
    it canceled.

    The service is marked deleted (``deleted_at``), not removed: it is gone from every list and
    lookup (``Service.objects``), its name is free again, but its jobs stay readable by job id
    (``GET /v1/services/{id}/jobs/{jobId}``, ``GET /v1/logs``), their logs until their
    workspace's retention date as any job's, and their usage counts in its month. In one
    transaction with the mark: its unfinished jobs are canceled (``cancel_job``, each audited
    as ``job.cancel``), its queued or running builds canceled, and ``service.delete``
    recorded. Its images are then removed by image cleanup (``cleanup_images`` keeps none of a
    deleted service's), asked for once the transaction commits; an image a job's container
    still holds goes on a later run."""
    canceled: list[str] = []
    with transaction.atomic():
        # The row lock orders this against create_job, which then finds no service.
        if not transition(
            Service.objects.filter(pk=service.pk, deleted_at__isnull=True),
            deleted_at=timezone.now(),
        ):
            raise NotFound("service")
        record(
            actor,
            service.workspace_id,
            "service.delete",
            target_type="service",
            target_id=service.pk,
            metadata={"name": service.name, "type": service.type},
        )
        for job in Job.objects.filter(service_id=service.pk, status__in=UNFINISHED):
            try:
                cancel_job(job, user=user, actor=actor)
            except Refused:  # it ended meanwhile
                continue
            canceled.append(job.pk)
        for build in Build.objects.filter(
            service_id=service.pk, status__in=(BuildStatus.QUEUED, BuildStatus.BUILDING)
        ):
            try:
                cancel_build(build, user=user)
            except Refused:  # it finished meanwhile
                continue
        transaction.on_commit(_request_cleanup)
    return canceled


def _request_cleanup() -> None:
    try:
        current_app.send_task("services.tasks.cleanup_images")
    except Exception as exc:  # beat runs it every 10 minutes anyway
        logger.warning("could not ask for image cleanup now (%s); beat will run it", exc)

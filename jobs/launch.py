"""The one way to create or cancel a job, used by the API and the dashboard alike."""

from celery import current_app
from django.db import transaction
from django.utils import timezone

from jobs import reasons
from jobs.models import EnvSnapshot, Job, JobStatus
from services.errors import Invalid, Refused
from services.models import Plan, Service

MAX_COMMAND_BYTES = 64 * 1024


def resolve_plan(service: Service, plan_id: str | None) -> Plan:
    valid = list(service.valid_plans().exclude(price_monthly__lte=0))
    valid_ids = ", ".join(p.id for p in valid)
    if not plan_id:
        plan = service.plan
        if plan.is_free:
            raise Invalid("planId", "free tier plans are not supported for jobs")
        return plan
    chosen = next((p for p in valid if p.id == plan_id), None)
    if chosen is None:
        kind = "cron job" if service.plan_kind == "cron" else service.get_type_display().lower()
        raise Invalid(
            "planId", f"{plan_id!r} is not valid for a {kind} service; valid plan ids: {valid_ids}"
        )
    return chosen


def create_job(
    service: Service, start_command: str, plan_id: str | None = None, *, user=None
) -> Job:
    """Snapshot the service's latest successful build and all its env vars, in one transaction,
    and start the job once that transaction commits."""
    if not isinstance(start_command, str) or not start_command.strip():
        raise Invalid("startCommand", "must be a non-empty string")
    if len(start_command.encode()) > MAX_COMMAND_BYTES:
        raise Invalid("startCommand", "must be at most 65536 bytes")
    if "\x00" in start_command:
        raise Invalid("startCommand", "must not contain NUL characters")
    with transaction.atomic():
        # Lock the service row so a concurrent env change or build lands wholly before or after.
        service = Service.objects.select_for_update().get(pk=service.pk)
        plan = resolve_plan(service, plan_id)
        build = service.latest_successful_build()
        if build is None:
            raise Refused(
                f"service {service.id} has no successful build yet, so it cannot run jobs; "
                "build it first (POST /v1/services/{serviceId}/builds)"
            )
        job = Job.objects.create(
            workspace_id=service.workspace_id,
            service=service,
            start_command=start_command,
            plan=plan,
            build=build,
            env_snapshot=EnvSnapshot.capture(service),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        transaction.on_commit(lambda: enqueue_start(job.id))
    return job


def enqueue_start(job_id: str) -> None:
    current_app.send_task("jobs.tasks.start_job", args=[job_id])


def cancel_job(job: Job, *, user=None) -> Job:
    """Cancel a job. Pending: canceled at once, it never starts. Running: ask its runner to stop
    it (SIGTERM, then SIGKILL after JOB_STOP_GRACE); it ends ``canceled``. Canceled: unchanged.
    Succeeded or failed: refused."""
    who = user if user is not None and user.is_authenticated else None
    now = timezone.now()
    stopped = Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
        status=JobStatus.CANCELED,
        finished_at=now,
        canceled_by=who,
        cancel_requested_at=now,
        reason=reasons.canceled_by(who),
        billed_seconds=0,
        cost=0,
    )
    if not stopped:
        Job.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, cancel_requested_at__isnull=True
        ).update(cancel_requested_at=now, canceled_by=who)
    job.refresh_from_db()
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise Refused(
            f"job {job.id} has already {job.status}; only unfinished jobs can be canceled"
        )
    return job

"""A job's service event: ``job_run_ended`` when it reaches ``succeeded``, ``failed`` or
``canceled``, written by the receiver of ``services.transitions.state_changed`` in the
transaction of the change (``services.events``)."""

from typing import Any

from jobs import reasons
from jobs.models import FINISHED, Job
from services.events import emit, on_its_own


def state_changed(sender: type, pk: str, fields: dict[str, Any], **kwargs: object) -> None:
    if sender is not Job or fields.get("status") not in FINISHED:
        return
    with on_its_own(f"job {pk}"):
        job = (
            Job.objects.filter(pk=pk).values("service_id", "status", "exit_code", "reason").first()
        )
        if job is None:
            return
        # Render's JobRunEnded: the job, its status, and how it ended (none when it exited 0).
        details: dict[str, Any] = {"jobId": pk, "status": job["status"]}
        reason = reasons.failure_reason(job["reason"])
        if reason:
            details["reason"] = reason
        if job["exit_code"] is not None:
            details["exitCode"] = job["exit_code"]  # Oneoff: also when it is 0
        emit(job["service_id"], "job_run_ended", **details)

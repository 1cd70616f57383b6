"""Display helpers of the Jobs list: the short exit-or-reason chip of a row and who ran a job."""

from django import template

from jobs import reasons

register = template.Library()


@register.filter
def end_chip(job) -> str:
    """A few words on how a finished job ended ("exit 3", "OOM", "timed out"); the full
    sentence (``reasons.describe``) goes in the chip's title. "" for an unfinished job."""
    if not job.is_finished:
        return ""
    reason = job.reason or {}
    if "oomKilled" in reason:
        return "OOM"
    if "timedOutSeconds" in reason:
        return "timed out"
    if "canceledBy" in reason:
        return "canceled"
    if "startError" in reason:
        return "start error"
    if reason.get("evicted"):
        return "lost"
    if "nonZeroExit" in reason:
        return f"exit {reason['nonZeroExit']}"
    if job.exit_code is not None:
        return f"exit {job.exit_code}"
    return ""


@register.filter
def chip_count(count: int) -> str:
    """A chip's count: counting stops at COUNT_CAP."""
    from dashboard.forms.jobs import COUNT_CAP

    return f"{COUNT_CAP}+" if count >= COUNT_CAP else str(count)


@register.filter
def end_text(job) -> str:
    return reasons.describe(job)


@register.filter
def run_by(job) -> str:
    """Who ran the job: the member's email (else username); "API" for a job made without one."""
    user = job.created_by
    if user is None:
        return "API"
    return user.email or user.username

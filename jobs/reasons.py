"""How a job ended: the reason a finished job records, and the same in plain words.

A reason is a small JSON object in the shape of Render's ``job_run_ended`` reason, which the API
returns unchanged: ``{"nonZeroExit": 3}``, ``{"oomKilled": {"memoryLimit": "512Mi"}}``,
``{"timedOutSeconds": 2592000}``, ``{"canceledBy": "alice@acme.test"}``, ``{"startError": …}``,
``{"evicted": true, "evictionReason": …}``; a job that exited 0 has none (``{}``). The runner,
the supervisor and the launcher build them only here, and the dashboard shows them only through
``describe``.
"""

from django.contrib.auth.models import User

from jobs.models import Job

START_ERROR_CHARS = 1000  # Docker's error texts can run long; the reason stays small


def non_zero_exit(code: int | None) -> dict:
    return {"nonZeroExit": code}


def oom_killed(memory_mb: int) -> dict:
    return {"oomKilled": {"memoryLimit": memory_limit_label(memory_mb)}}


def timed_out(seconds: int) -> dict:
    return {"timedOutSeconds": seconds}


def canceled_by(user: User | None) -> dict:
    """Canceled by a person (their email, else username), or through the API (``user`` None)."""
    return {"canceledBy": (user.email or user.username) if user is not None else "api"}


def start_error(message: str) -> dict:
    return {"startError": message[:START_ERROR_CHARS]}


def evicted(why: str) -> dict:
    return {"evicted": True, "evictionReason": why}


def failure_reason(reason: dict | None) -> dict:
    """A recorded reason as Render's ``FailureReason`` (job_run_ended's ``reason``), which
    requires ``evicted``; Oneoff's own keys (``canceledBy``, ``startError``) stay beside
    Render's. ``{}`` for none (a job that exited 0)."""
    if not reason:
        return {}
    return {**reason, "evicted": bool(reason.get("evicted", False))}


def engine_lost_text(host: str, exit_code: int) -> str:
    """The ``evictionReason`` of a job whose container its Docker Engine stopped (a restart
    without live-restore): not the job's own failure, so not ``nonZeroExit``."""
    return (
        f"the Docker Engine on {host} restarted and stopped the job's container "
        f"(exit {exit_code}); run dockerd with live-restore so jobs survive engine restarts"
    )


def host_lost_text(host: str, detail: str) -> str:
    """The ``evictionReason`` of a job whose runner host was lost (its node died)."""
    return f"runner host {host or '?'} was lost: {detail}"


def memory_words(memory_mb: int) -> str:
    """A plan's memory in words: "512 MB", "2 GB"."""
    return _memory(f"{memory_mb}Mi")


def memory_limit_label(memory_mb: int) -> str:
    """A plan's memory as the reason records it (Kubernetes-style, like Render's: ``512Mi``)."""
    return f"{memory_mb}Mi"


def describe(job: Job) -> str:
    """How a job ended (or why it has not started), in plain words; "" when there is nothing to
    say (a job that runs)."""
    reason = job.reason or {}
    if "oomKilled" in reason:
        oom = reason["oomKilled"]
        limit = oom.get("memoryLimit") if isinstance(oom, dict) else None
        memory = _memory(limit) if limit else f"{job.plan.memory_mb} MB"
        return f"Out of memory: exceeded {memory} — try a larger plan"
    if "timedOutSeconds" in reason:
        return f"Timed out after {human_seconds(reason['timedOutSeconds'])}"
    if "canceledBy" in reason:
        who = reason["canceledBy"]
        return "Canceled through the API" if who == "api" else f"Canceled by {who}"
    if "startError" in reason:
        return f"Could not start: {reason['startError']}"
    if reason.get("evicted"):
        return f"Lost: {reason.get('evictionReason') or 'the runner lost the container'}"
    if "nonZeroExit" in reason:
        return f"Exited with code {reason['nonZeroExit']}"
    if job.status == "succeeded":
        return "Exited with code 0"
    if job.status == "failed" and job.exit_code is not None:
        return f"Exited with code {job.exit_code}"
    if reason:
        key, value = next(iter(reason.items()))
        return f"{key}: {value}"
    if job.status == "pending":
        return job.note or "Waiting for a runner"
    if job.status == "running" and job.cancel_requested_at:
        return "Stopping: cancel requested"
    return ""


def human_seconds(seconds: float | None) -> str:
    """A duration in words, the way every page shows one: "2.3 s", "2 min 5 s", "1 d 1 h"."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{int(seconds)} s"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def _memory(limit: str | int) -> str:
    """A recorded memory limit ("512Mi", "2Gi", bytes or MB) in MB or GB."""
    text = str(limit).strip()
    units = {"Mi": 1, "M": 1, "Gi": 1024, "G": 1024}
    unit = next((u for u in units if text.endswith(u)), None)
    try:
        if unit:
            megabytes = int(float(text[: -len(unit)]) * units[unit])
        else:
            number = int(text)
            megabytes = number // (1024 * 1024) if number >= 1024 * 1024 else number
    except ValueError:
        return text
    if megabytes >= 1024 and megabytes % 1024 == 0:
        return f"{megabytes // 1024} GB"
    return f"{megabytes} MB"

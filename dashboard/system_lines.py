"""The log viewer's system lines: what Oneoff knows about a job's run, told in its log in a
style of their own (started on which host, exited with which code and what it means, canceled by
whom, out of memory against the plan's limit, timed out)."""

from jobs import reasons

# Exit codes past 128 are 128 + the signal that ended the process.
SIGNALS = {
    130: "interrupted (SIGINT)",
    134: "aborted (SIGABRT)",
    137: "killed (SIGKILL): out of memory or stopped by force",
    139: "segmentation fault (SIGSEGV)",
    143: "terminated (SIGTERM): asked to stop",
}


def exit_meaning(code: int | None) -> str:
    if code is None:
        return ""
    if code in SIGNALS:
        return SIGNALS[code]
    if code > 128:
        return f"ended by signal {code - 128}"
    return "success" if code == 0 else "the command reported an error"


def start_lines(job) -> list[str]:
    if job.started_at is None:
        return []
    host = f" on {job.host}" if job.host else ""
    return [f"Started{host} ({job.plan.name}: {job.plan.specs})"]


def end_lines(job) -> list[str]:
    """How the job ended, once it has; the reason in words, the exit code and its meaning."""
    if not job.is_finished:
        return []
    out = []
    reason = job.reason or {}
    if "oomKilled" in reason:
        out.append(f"Out of memory: the job used its plan's limit of {job.plan.memory_mb} MB")
    elif "canceledBy" in reason or job.status == "canceled":
        out.append(reasons.describe(job) or "Canceled")
    elif reason and "nonZeroExit" not in reason:
        out.append(reasons.describe(job))
    if job.exit_code is not None:
        out.append(f"Exited with code {job.exit_code}: {exit_meaning(job.exit_code)}")
    return out

"""Oneoff's audited actions, and how each reads in Render's audit-log shape.

Render's ``event`` is a closed enum (``AuditLogEvent`` in Render's generated client: an unknown
value makes the client fail on the whole page), so every entry's ``event`` is one of Render's
names: its own where Render has the action, else the nearest one, named in the table below.
Oneoff's exact action is always in the entry's ``action`` field (an extra property Render's
client keeps) and in ``metadata.action``.
"""

from datetime import UTC

from audit.models import AuditEntry, AuditStatus

# action -> (Render's event, the action in words). Render has no event of its own for job runs
# (told as shells: a command run on a service), builds (as build sources), service updates other
# than a rename, API keys (as OAuth access) and log streams (as OpenTelemetry integrations): for
# those ``event`` is the nearest of Render's.
ACTIONS: dict[str, tuple[str, str]] = {
    "job.create": ("StartShellEvent", "Job run"),
    "job.rerun": ("StartShellEvent", "Job rerun"),
    "job.cancel": ("EndShellEvent", "Job canceled"),
    "build.trigger": ("CreateBuildSourceEvent", "Build started"),
    "deploy.create": ("CreateBuildSourceEvent", "Build deployed again (rollback)"),
    "env_var.set": ("UpdateEnvVarsEvent", "Env var set"),
    "env_var.delete": ("DeleteEnvVarsEvent", "Env var deleted"),
    "env_vars.replace": ("UpdateEnvVarsEvent", "Env vars replaced"),
    "env_var.reveal": ("ViewEnvVarValuesEvent", "Env var value shown"),
    "service.create": ("CreateServerEvent", "Service created"),
    "service.update": ("UpdateServiceNameEvent", "Service updated"),
    "service.suspend": ("SuspendServiceEvent", "Service suspended"),
    "service.resume": ("ResumeServiceEvent", "Service resumed"),
    "service.delete": ("DeleteServerEvent", "Service deleted"),
    "api_key.create": ("GrantOAuthAccessEvent", "API key created"),
    "api_key.revoke": ("RevokeOAuthAccessEvent", "API key revoked"),
    "log_stream.create": ("CreateOtelIntegrationEvent", "Log stream created"),
    "log_stream.update": ("UpdateOtelIntegrationEvent", "Log stream updated"),
    "log_stream.delete": ("DeleteOtelIntegrationEvent", "Log stream deleted"),
    "webhook.create": ("CreateWebhookEvent", "Webhook created"),
    "webhook.update": ("UpdateWebhookEvent", "Webhook updated"),
    "webhook.delete": ("DeleteWebhookEvent", "Webhook deleted"),
    "member.add": ("JoinTeamEvent", "Member added"),
    "member.role": ("ChangeTeamMemberRoleEvent", "Member role changed"),
    "member.remove": ("RemoveUserFromTeamEvent", "Member removed"),
    "signin": ("LoginEvent", "Signed in"),
    "signin.failed": ("LoginEvent", "Sign-in failed"),
}
# Cron job services have Render events of their own.
CRON_EVENTS = {"service.create": "CreateCronJobEvent", "service.delete": "DeleteCronJobEvent"}


def render_event(entry: AuditEntry) -> str:
    if entry.target_id.startswith("crn-") and entry.action in CRON_EVENTS:
        return CRON_EVENTS[entry.action]
    # ``record`` takes only the actions above; an entry of an action retired since still
    # needs one of Render's names to parse, and its ``action`` says what it was.
    return ACTIONS.get(entry.action, ("ApplyBlueprintEvent", ""))[0]


def _actor(entry: AuditEntry) -> dict:
    if entry.key_prefix:
        actor = {"type": "rest_api", "id": entry.key_prefix}
    elif entry.actor_id is None and not (entry.actor_email or entry.actor_name):
        actor = {"type": "system"}
    else:
        actor = {"type": "user"}
    if entry.actor_email or entry.actor_name:
        actor["email"] = entry.actor_email or entry.actor_name
    if entry.actor_name:
        actor["name"] = entry.actor_name
    return actor


def _metadata(entry: AuditEntry) -> dict[str, str]:
    """Render's metadata is a map of strings: the target under its type (Render's own example
    is ``{"service": "srv-…"}``), the action, where from, and the entry's details as text."""
    data = dict(entry.details)
    data["action"] = entry.action
    if entry.target_type:
        data[entry.target_type] = entry.target_id
        data["targetType"] = entry.target_type
        data["targetId"] = entry.target_id
    if entry.address:
        data["address"] = entry.address
    if entry.key_prefix:
        data["keyPrefix"] = entry.key_prefix
    return data


def entry_dict(entry: AuditEntry) -> dict:
    """Render's ``auditLog`` object, plus Oneoff's ``action`` and target."""
    return {
        "id": entry.id,
        "timestamp": entry.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "event": render_event(entry),
        "status": "success" if entry.status == AuditStatus.SUCCESS else "error",
        "actor": _actor(entry),
        "metadata": _metadata(entry),
        "action": entry.action,
        "targetType": entry.target_type,
        "targetId": entry.target_id,
    }

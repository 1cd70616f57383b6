"""Thin Celery task: the audit retention purge (logic in audit/retention.py)."""

from celery import shared_task

from audit import retention
from services.outage import quiet_while_database_down


@shared_task(ignore_result=True)
@quiet_while_database_down
def purge_audit_entries() -> int:
    """Delete audit entries older than AUDIT_RETENTION_DAYS."""
    return retention.purge()

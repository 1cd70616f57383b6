"""Audit retention: the one place audit entries are deleted.

Entries are append-only for the app (``audit.models``); beat runs ``purge`` hourly
(``audit.tasks.purge_audit_entries``), which removes the entries older than
``AUDIT_RETENTION_DAYS`` with raw ``DELETE`` statements, ``AUDIT_PURGE_BATCH`` rows at a time
(short transactions, the oldest first through the ``created_at`` index). It goes round the
models' refusal on purpose: nothing else may delete an entry.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEntry

log = logging.getLogger(__name__)


def purge(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """Delete every entry created more than AUDIT_RETENTION_DAYS ago; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    batch_size = batch_size or settings.AUDIT_PURGE_BATCH
    table = connection.ops.quote_name(AuditEntry._meta.db_table)
    sql = (
        f"DELETE FROM {table} WHERE id IN "  # noqa: S608 (the table's name, quoted; values bound)
        f"(SELECT id FROM {table} WHERE created_at < %s ORDER BY created_at LIMIT %s)"
    )
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [cutoff, batch_size])
            deleted = cursor.rowcount
        total += deleted
        if deleted < batch_size:
            break
    if total:
        log.info("purged %d audit entries older than %s", total, cutoff.isoformat())
    return total

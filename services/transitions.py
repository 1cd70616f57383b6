"""State changes other apps react to, told in the same transaction as the change.

A compare-and-set UPDATE (``Job.objects.filter(pk=…, status=RUNNING).update(…)``) becomes
``transition(queryset, **fields)``: the same UPDATE, plus ``state_changed`` sent once per row it
changed, inside one transaction. A receiver that writes rows (an outbox: the webhooks app's
events) therefore commits them with the change or not at all: no event is lost when a process
dies between the change and its announcement, and none is told for a change that rolled back.
The lower apps send it without knowing who listens.
"""

from typing import Any, cast

from django.db import connections, models, transaction
from django.db.models import sql
from django.dispatch import Signal

# sender: the model class; pk: the row's primary key; fields: the values it was set to.
state_changed = Signal()


def transition(queryset: models.QuerySet, **fields: Any) -> int:
    """``queryset.update(**fields)`` that sends ``state_changed`` for each row it changed, in the
    same transaction; returns the count like ``update``. The rows reported are exactly the ones
    changed: one ``UPDATE … RETURNING`` where the database has it (PostgreSQL, SQLite 3.35+;
    the UPDATE locks and re-checks each row as a ``SELECT … FOR UPDATE`` would), else the rows
    are locked first (FOR UPDATE) and then updated."""
    model = queryset.model
    using = queryset.db
    with transaction.atomic(using=using):
        if connections[using].features.can_return_rows_from_update:
            query = cast(sql.UpdateQuery, queryset.order_by().query.chain(sql.UpdateQuery))
            query.add_update_values(fields)
            query.annotations = {}  # as QuerySet.update: none in the WHERE's subqueries
            rows = query.get_compiler(using).execute_returning_sql([model._meta.pk])
            pks = [row[0] for row in rows]
        else:
            pks = list(queryset.order_by().select_for_update().values_list("pk", flat=True))
            if pks:
                model._default_manager.filter(pk__in=pks).update(**fields)
        for pk in pks:
            state_changed.send(sender=model, pk=pk, fields=fields)
    return len(pks)

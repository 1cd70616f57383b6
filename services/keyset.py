"""Keyset pages, newest first: the one paging rule for every list of jobs, builds and services.

A page continues after the ``(created_at, id)`` key of the last row of the previous page, so a
page deep in a list costs what the first one does (an offset would read and skip every row
before it), and rows created meanwhile neither shift nor repeat the pages already read.
"""

from datetime import datetime

from django.db.models import Model, QuerySet


def keyset_page[M: Model](
    queryset: QuerySet[M], after: tuple[datetime, str] | None = None, limit: int = 20
) -> list[M]:
    """Up to ``limit`` rows of ``queryset``, newest first by ``(created_at, id)``, starting just
    after the row keyed ``after`` (from the newest without it). Ask for one more row than a page
    shows to learn whether another page follows."""
    return list(keyset_queryset(queryset, after, limit))


def keyset_queryset[M: Model](
    queryset: QuerySet[M], after: tuple[datetime, str] | None = None, limit: int = 20
) -> QuerySet[M]:
    """``keyset_page``'s query, not yet run."""
    if after is not None:
        created_at, pk = after
        # The redundant `created_at <= …` bounds the index range scan; the exclude breaks ties.
        queryset = queryset.filter(created_at__lte=created_at).exclude(
            created_at=created_at, pk__gte=pk
        )
    return queryset.order_by("-created_at", "-pk")[:limit]

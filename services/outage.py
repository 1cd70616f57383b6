"""What a failure to reach the database looks like, for the faces' 503 answers.

A request that needs the database while PostgreSQL restarts, fails over or refuses connections
gets Django's ``OperationalError`` or ``InterfaceError`` from wherever it first queries (the API
key's lookup, the session, a view). The API answers it ``{"id": "unavailable", "message"}``
(api/errors.py) and everything else a plain page (config/unavailable.py, Django's handler500),
both 503 with ``Retry-After``: the client should come back, nothing is broken for good.
"""

from django.db import InterfaceError, OperationalError

RETRY_AFTER_SECONDS = 5
DATABASE_MESSAGE = "the database is not answering; retry in a few seconds"


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` is, or was raised while handling, a failure to reach the database."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (OperationalError, InterfaceError)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False

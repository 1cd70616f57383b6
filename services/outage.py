"""What a failure to reach the database looks like, for the faces' 503 answers.

A request that needs the database while PostgreSQL restarts, fails over or refuses connections
gets Django's ``OperationalError`` or ``InterfaceError`` from wherever it first queries (the API
key's lookup, the session, a view). The API answers it ``{"id": "unavailable", "message"}``
(api/errors.py) and everything else a plain page (config/unavailable.py, Django's handler500),
both 503 with ``Retry-After``: the client should come back, nothing is broken for good.
"""

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

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


_down_since: dict[str, float] = {}  # periodic task -> monotonic time its outage began


def quiet_while_database_down(func: Callable[..., Any]) -> Callable[..., Any]:
    """For beat's periodic tasks (sweeps, heartbeats, purges): a run that cannot reach the
    database logs one line for the whole outage, and one when it answers again, instead of a
    traceback every few seconds; it returns None and the next scheduled run does the work. Any
    other error is raised as before."""
    name = f"{func.__module__}.{func.__name__}"

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            connection.close()
            if name not in _down_since:
                _down_since[name] = time.monotonic()
                logger.warning(
                    "%s: the database does not answer (it runs again on schedule): %s",
                    name,
                    _first_line(exc),
                )
            return None
        began = _down_since.pop(name, None)
        if began is not None:
            down = time.monotonic() - began
            logger.warning("%s: the database answers again (after %.0f s)", name, down)
        return result

    return run


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

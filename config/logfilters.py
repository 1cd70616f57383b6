"""Logging filters named in ``settings.LOGGING``."""

import logging

from services.outage import database_unavailable


class DatabaseOutageFilter(logging.Filter):
    """On ``django.request``: a request that failed only because the database does not answer was
    answered 503 with ``Retry-After`` and logged in one line by ``config.unavailable``; Django's
    own record of it (a traceback per request, every request of an outage) is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not database_unavailable(exc)

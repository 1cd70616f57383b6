"""How the API writes timestamps and reads them from a query."""

from datetime import UTC, datetime

from django.utils import timezone

from api.errors import bad_request


def isoformat(value: datetime | None) -> str | None:
    """RFC 3339 with microseconds and offset, in UTC: ``2025-03-20T12:16:02.544199+00:00``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def aware(value: datetime | None, field: str = "time") -> datetime | None:
    """A query timestamp in UTC (one without an offset is UTC); out of range is a 400."""
    if value is None:
        return None
    if timezone.is_naive(value):
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise bad_request(field, "is out of range") from None

"""Keyset pages for the API's lists: newest first on (created_at, id), with opaque cursors.

``Page`` is the query (``limit`` 1-100, default 20, and ``cursor``); ``paginate(qs, page,
"job")`` answers one page (the id prefix checks that a cursor belongs to the list), and each
item carries ``encode_cursor(created_at, id)`` for the client to send back unchanged.
"""

import base64
import binascii
from datetime import UTC, datetime

from ninja import Field

from api.errors import bad_request
from api.query import ListQuery
from services import ids
from services.keyset import keyset_page


class Page(ListQuery):
    limit: int = Field(20, ge=1, le=100, description="Items per page (1-100).")
    cursor: str | None = Field(
        None, max_length=200, description="Opaque; the `cursor` of the last item of a page."
    )


def unb64(value: str) -> bytes:
    """Strict urlsafe base64 without padding (binascii.Error on anything else)."""
    return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)


def encode_cursor(created_at: datetime, pk: str) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat(timespec='microseconds')}|{pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str, prefix: str | tuple[str, ...]) -> tuple[datetime, str]:
    prefixes = (prefix,) if isinstance(prefix, str) else prefix
    try:
        raw = unb64(value).decode()
        stamp, _, pk = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        created_at, pk = None, ""
    if (
        created_at is None
        or created_at.tzinfo is None
        or not any(ids.is_valid(pk, p) for p in prefixes)
    ):
        raise bad_request("cursor", "not a cursor of this list; pass an item's `cursor` unchanged")
    return created_at, pk


def paginate(queryset, page: Page, prefix: str | tuple[str, ...]) -> list:
    """One page, newest first, by keyset on (created_at, id) (``services.keyset``): as cheap
    deep as on page one. The cursor is the opaque form of the last row's key."""
    after = decode_cursor(page.cursor, prefix) if page.cursor else None
    return keyset_page(queryset, after, page.limit)

"""Pages with a big piece (a log's 1,000 lines, about 370 KB): the piece joins the response after
the template engine ran, not inside it.

The engine builds a page by joining each level's output into the level above (``extends``,
``block``, ``include``, a partial) and marks each join safe, a copy of the whole string every
time; a page whose template holds a non-ASCII character (``·``, ``—``) also makes the log's
ASCII twice as wide. On the job page those copies were about 3 ms of its 16 (issue 20). Here the
template holds a placeholder of a few bytes where the piece goes, and the response is the page's
parts and the piece, each encoded once.

A placeholder is ``\\x00`` + a random token of this response + its number + ``\\x00``: the token
is new for each response and unknown to whoever wrote the page's text (a job's command, a log
line), so no text can put a piece where it does not belong.
"""

import re
import secrets

from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

# The context key the ``{% log_lines %}`` tag looks for.
KEY = "splicer"


class Splicer:
    """Holds a page's big pieces while its template renders, then puts them in place."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        self.pieces: list[str] = []

    def hold(self, html: str) -> SafeString:
        """The placeholder the template writes instead of ``html`` (already safe HTML)."""
        self.pieces.append(html)
        return mark_safe(f"\x00{self.token}{len(self.pieces) - 1}\x00")  # noqa: S308 - ours

    def join(self, page: str) -> bytes:
        """``page`` with each placeholder replaced by its piece, as UTF-8."""
        if not self.pieces:
            return page.encode()
        parts = re.split(f"\x00{self.token}(\\d+)\x00", page)
        # re.split puts the captured numbers at the odd indices, the page's text around them.
        return b"".join(
            (self.pieces[int(part)] if i % 2 else part).encode() for i, part in enumerate(parts)
        )


def render(request, template_name: str, context: dict, status: int | None = None) -> HttpResponse:
    """``django.shortcuts.render`` for a page whose template writes its big pieces through the
    splicer in ``context`` (``{% log_lines %}`` does)."""
    splicer = Splicer()
    page = render_to_string(template_name, {**context, KEY: splicer}, request)
    return HttpResponse(splicer.join(page), status=status)

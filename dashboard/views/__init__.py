"""The dashboard's pages, one module per concern, and the two helpers they share.

Every view is guard (ownership helper), query, render. htmx requests get the page's named
partial; a history-restore request gets the whole page. The page frame (workspace switcher,
role) comes from dashboard.context_processors.frame.
"""

from django.http import HttpResponse

from dashboard.errors import error_page
from dashboard.http import HtmxHttpRequest


def is_partial(request: HtmxHttpRequest) -> bool:
    """Answer with the page's named partial: an htmx request, other than a history restore."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def bad_request(request, form) -> HttpResponse:
    """A 400 naming each bad field of a query string or body: the styled page, or for an htmx
    request an alert (never swapped over the element that asked)."""
    lines = [f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()]
    return error_page(request, 400, "; ".join(lines))

"""The dashboard's pages, one module per concern, and the two helpers they share.

Every view is guard (ownership helper), query, render. htmx requests get the page's named
partial; a history-restore request gets the whole page. The page frame (workspace switcher,
role) comes from dashboard.context_processors.frame.
"""

from django.http import HttpResponseBadRequest


def is_partial(request) -> bool:
    """Answer with the page's named partial: an htmx request, other than a history restore."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def bad_request(form) -> HttpResponseBadRequest:
    """A 400 naming each bad field of a query string or body."""
    lines = [f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()]
    return HttpResponseBadRequest("Bad request. " + "; ".join(lines), content_type="text/plain")

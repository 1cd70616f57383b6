"""The dashboard's error answers: styled pages in the dashboard frame for full pages, an alert for
htmx partials, never Django's debug page or a table replaced by raw text.

``config/urls.py`` names these views Django's handler400/403/404/500; views and middleware that
refuse a request themselves call ``error_page``.
"""

import logging
import uuid

from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils.html import escape

from dashboard.context_processors import SESSION_WORKSPACE
from dashboard.http import HtmxHttpRequest
from services.models import Membership

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    402: "Over budget",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Request too large",
    429: "Too many requests",
    500: "Something went wrong",
}
MESSAGES = {
    400: "The request was not valid.",
    403: "You do not have permission to do that here.",
    404: "There is nothing here, or it belongs to a workspace you are not in.",
    500: "The server failed to answer. The error is logged with the reference below.",
}


def error_page(
    request: HtmxHttpRequest, status: int, message: str = "", *, reference: str = ""
) -> HttpResponse:
    message = message or MESSAGES.get(status, "")
    htmx = getattr(request, "htmx", None)  # absent when a middleware before htmx's refuses
    if htmx and not htmx.history_restore_request:
        return _alert(status, message, reference)
    _frame_for(request)
    context = {
        "status": status,
        "title": TITLES.get(status, "Error"),
        "message": message,
        "reference": reference,
    }
    body = render_to_string("errors/error.html", context, request=request)
    return HttpResponse(body, status=status)


def _frame_for(request: HtmxHttpRequest) -> None:
    """Error pages keep the navigation: the frame of the workspace the reader used last (never
    the one a 404 was about, which may not be theirs)."""
    if getattr(request, "membership", None) is not None:
        return
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return
    memberships = Membership.objects.filter(user=user).select_related("workspace")
    last = request.session.get(SESSION_WORKSPACE) if hasattr(request, "session") else None
    membership = (
        memberships.filter(workspace_id=last).first()
        or memberships.order_by("workspace__name").first()
    )
    if membership is not None:
        request.membership = membership


def _alert(status: int, message: str, reference: str) -> HttpResponse:
    text = f"{TITLES.get(status, 'Error')}: {message}" + (
        f" (ref {reference})" if reference else ""
    )
    if status == 400:
        # htmx swaps a 400 (forms answer with their inline errors): send this one to the alerts
        # box instead of the element that asked, so no table or panel is replaced by it.
        response = HttpResponse(f'<p class="alert" role="alert">{escape(text)}</p>', status=400)
        response["HX-Retarget"] = "#alerts"
        response["HX-Reswap"] = "beforeend"
        return response
    # Other errors are not swapped; static/js/app.js shows a text/plain body as an alert.
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


def bad_request(request: HtmxHttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, 400)


def permission_denied(request: HtmxHttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, 403)


def page_not_found(request: HtmxHttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, 404)


def server_error(request: HtmxHttpRequest) -> HttpResponse:
    reference = uuid.uuid4().hex[:12]
    # Django has logged the traceback (django.request); this line ties it to what the user sees.
    log.error("server error, reference %s: %s %s", reference, request.method, request.path)
    try:
        return error_page(request, 500, reference=reference)
    except Exception:  # the frame itself may be what fails (e.g. the database is down)
        log.exception("the 500 page failed too, reference %s", reference)
        return HttpResponse(
            f"Server error (reference {reference}).", status=500, content_type="text/plain"
        )

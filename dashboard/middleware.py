"""The dashboard's answer to the domain's errors (``services.errors``), written once.

A missing or foreign object is Django's 404 and a role's refusal its 403; a limit reached
(``Limited``: too many job runs, API keys) a 429 with ``Retry-After``; a job past the
workspace's monthly budget (``OverBudget``: a rerun) a 402; bad input or an action
the object's state refuses is a 400 saying the domain's message (``dashboard.errors``: the styled
page, or an alert for an htmx request). A view that shows such an error in a form catches it itself
(``run_job``). The API never gets here: ninja answers every error of its own views.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.cache import patch_vary_headers

from dashboard.errors import error_page
from services.errors import DomainError, Forbidden, Limited, NotFound, OverBudget


class DomainErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DomainError):
            return None
        # Raised here, Django turns these into its 404 and 403 pages like any view's.
        if isinstance(exception, NotFound):
            raise Http404(str(exception)) from exception
        if isinstance(exception, Forbidden):
            raise PermissionDenied(str(exception)) from exception
        if isinstance(exception, Limited):
            response = error_page(request, 429, str(exception))
            response["Retry-After"] = str(exception.retry_after)
            return response
        if isinstance(exception, OverBudget):
            return error_page(request, 402, str(exception))
        return error_page(request, 400, str(exception))


class HtmxVaryMiddleware:
    """A page and its htmx partial share a URL (``hx-push-url``: the Jobs list's filters, a log
    search): ``Vary: HX-Request, HX-History-Restore-Request`` keeps them apart in the browser's
    cache, or the browser's Back to a filtered list shows the partial it cached as the page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method in ("GET", "HEAD"):
            patch_vary_headers(response, ("HX-Request", "HX-History-Restore-Request"))
        return response

"""Django's handler500: a 503 with ``Retry-After`` when the database is not answering
(services/outage.py), the dashboard's 500 page otherwise.

Django calls the handler while it handles the exception, so ``sys.exc_info()`` is the failure.
Under /v1/ the 503 is the API's ``{"id", "message"}`` (for a failure outside the API's own
handlers, e.g. in a middleware); elsewhere a plain page, with no template: the dashboard's frame
would query the database again.
"""

import logging
import sys

from django.http import HttpRequest, HttpResponse

from api.errors import error_response
from dashboard.errors import server_error as dashboard_server_error
from services.outage import DATABASE_MESSAGE, RETRY_AFTER_SECONDS, database_unavailable

log = logging.getLogger(__name__)

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Temporarily unavailable</title></head>
<body>
<h1>Temporarily unavailable</h1>
<p>Oneoff's database is not answering. Jobs that are running keep running. Try again in a few
seconds.</p>
</body>
</html>
"""


def server_error(request: HttpRequest) -> HttpResponse:
    if not database_unavailable(sys.exc_info()[1]):
        return dashboard_server_error(request)  # type: ignore[arg-type]
    log.warning("database unavailable: %s %s", request.method, request.path)
    if request.path.startswith("/v1/"):
        response = error_response(request, 503, "unavailable", DATABASE_MESSAGE)
    else:
        response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response

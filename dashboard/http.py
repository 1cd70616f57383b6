"""The request a dashboard view gets, for the type checker (django-htmx's documented pattern)."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from services.models import Membership


class HtmxHttpRequest(HttpRequest):
    # Set by django-htmx's middleware on every request.
    htmx: HtmxDetails
    # Set by the view from its ownership helper (``dashboard.context_processors``).
    membership: Membership

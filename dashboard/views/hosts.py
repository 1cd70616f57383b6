"""The hosts page: the machines jobs run on, for platform staff.

Hosts are the platform's, not a workspace's: their names, capacity and the jobs running on them
(every workspace's together) say something about other tenants, so only staff users see the
page; anyone else gets a 404, as for any object outside their workspaces.
"""

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.access import signed_in
from dashboard.http import HtmxHttpRequest
from jobs import hosts as runner_hosts


@signed_in
@require_GET
def hosts(request: HtmxHttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise Http404
    rows, error = runner_hosts.hosts()
    return render(
        request,
        "dashboard/hosts.html",
        {"hosts": rows, "error": error, "backend": runner_hosts.backend(), "tab": "hosts"},
    )

"""A workspace's audit log: who changed what, when and from where. Admins only."""

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.access import get_workspace, signed_in
from dashboard.forms.audit import AuditFilterForm
from dashboard.http import HtmxHttpRequest
from dashboard.views import bad_request, is_partial
from services.errors import Forbidden


@signed_in
@require_GET
def audit_log(request: HtmxHttpRequest, workspace_id: str) -> HttpResponse:
    workspace, request.membership = get_workspace(request.user, workspace_id)
    if not request.membership.is_admin:
        raise Forbidden("only workspace admins can read the audit log")
    filters = AuditFilterForm(request.GET, workspace=workspace)
    if not filters.is_valid():
        return bad_request(request, filters)
    entries, next_cursor = filters.page()
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "tab": "audit",
        "filters": filters,
        "entries": entries,
        "next_cursor": next_cursor,
        "query": query.urlencode(),
    }
    template = "audit/list.html"
    if is_partial(request):
        template += "#entries"
    return render(request, template, context)

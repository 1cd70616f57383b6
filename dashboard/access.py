"""What the dashboard adds to ``services.access``: a signed-in reader and their membership.

The ownership rules are the domain's (``services.access``): an outsider (no membership in the
object's workspace) gets a 404, never a hint that the object exists; a member whose role may see
but not act gets a 403 (``dashboard.middleware`` answers the domain's errors).
"""

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django_htmx.http import HttpResponseClientRedirect

from services.access import READ, check_role, service_for
from services.models import Membership, Service, Workspace


def signed_in(view):
    """``login_required`` that also copes with htmx: a poll or a form sent after the session
    ended sends the whole browser to the sign-in page, instead of swapping that page into a
    fragment of the current one."""
    guarded = login_required(view)

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.htmx and not request.user.is_authenticated:
            back = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(f"{settings.LOGIN_URL}?{urlencode({'next': back})}")
        return guarded(request, *args, **kwargs)

    return wrapper


def membership_for(user, workspace_id: str, need: str = READ) -> Membership:
    """The user's membership in a workspace (404 when none), checked against ``need``."""
    if not user.is_authenticated:
        raise Http404
    membership = (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace_id=workspace_id)
        .first()
    )
    if membership is None:
        raise Http404("No such workspace")
    check_role(membership.role, need)
    return membership


def get_workspace(user, workspace_id: str, need: str = READ) -> tuple[Workspace, Membership]:
    membership = membership_for(user, workspace_id, need)
    return membership.workspace, membership


def get_service(user, service_id: str, need: str = READ) -> tuple[Service, Membership]:
    """The service and the reader's membership of its workspace, checked against ``need``, in
    one query."""
    service = service_for(user, service_id)
    membership = Membership(workspace=service.workspace, user=user, role=service.member_role)
    check_role(membership.role, need)
    return service, membership

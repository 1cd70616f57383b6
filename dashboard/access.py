"""Ownership helpers for the dashboard: one per object type, so isolation is written once.

An outsider (no membership in the object's workspace) gets a 404, never a hint that the object
exists; a member whose role may see but not act gets a 403.
"""

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import Http404
from django_htmx.http import HttpResponseClientRedirect

from jobs.models import Job
from services.models import Build, Membership, Service, Workspace

READ, WRITE, ADMIN = "read", "write", "admin"


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


def _check(membership: Membership, need: str) -> None:
    if need == WRITE and not membership.can_write:
        raise PermissionDenied("Your role in this workspace is read-only.")
    if need == ADMIN and not membership.is_admin:
        raise PermissionDenied("Only workspace admins can do this.")


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
    _check(membership, need)
    return membership


def get_workspace(user, workspace_id: str, need: str = READ) -> tuple[Workspace, Membership]:
    membership = membership_for(user, workspace_id, need)
    return membership.workspace, membership


def get_service(user, service_id: str, need: str = READ) -> tuple[Service, Membership]:
    """The service and the reader's membership of its workspace, in one query (every page and
    every log poll starts here)."""
    # for_user joins the reader's membership; the annotation reads its role from that same join.
    service = (
        Service.objects.for_user(user)
        .select_related("plan", "workspace")
        .annotate(member_role=F("workspace__memberships__role"))
        .filter(pk=service_id)
        .first()
    )
    if service is None:
        raise Http404("No such service")
    membership = Membership(workspace=service.workspace, user=user, role=service.member_role)
    _check(membership, need)
    return service, membership


def get_job(user, service: Service, job_id: str) -> Job:
    """A job of an already checked service (the service's check covers the workspace)."""
    job = (
        Job.objects.select_related("plan", "build", "created_by", "canceled_by")
        .filter(pk=job_id, service=service)
        .first()
    )
    if job is None:
        raise Http404("No such job")
    job.service = service
    job.workspace = service.workspace
    return job


def get_build(user, service: Service, build_id: str) -> Build:
    build = Build.objects.select_related("created_by").filter(pk=build_id, service=service).first()
    if build is None:
        raise Http404("No such build")
    build.service = service
    return build

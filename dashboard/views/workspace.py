"""A workspace's pages: home (the workspace used last), its services list and its API keys."""

from cryptography.fernet import InvalidToken
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.trail import actor_of, record
from dashboard.access import get_service, get_workspace, signed_in
from dashboard.context_processors import SESSION_WORKSPACE
from dashboard.forms.services import ApiKeyForm
from dashboard.http import HtmxHttpRequest
from jobs.models import Job
from services import crypto
from services.apikeys import create_key
from services.errors import Limited, Refused
from services.models import ApiKey, Build, Workspace


@signed_in
@require_GET
def home(request: HtmxHttpRequest) -> HttpResponse:
    """The services list of the workspace the reader used last (or their first one)."""
    workspaces = Workspace.objects.for_user(request.user).order_by("name")
    current = workspaces.filter(pk=request.session.get(SESSION_WORKSPACE)).first()
    current = current or workspaces.first()
    if current is None:
        return render(request, "services/no_workspace.html")
    return redirect("services", current.id)


@signed_in
@require_GET
def services_list(request: HtmxHttpRequest, workspace_id: str) -> HttpResponse:
    workspace, request.membership = get_workspace(request.user, workspace_id)
    latest_build = Build.objects.filter(service=OuterRef("pk")).order_by("-created_at", "-id")
    last_job = Job.objects.filter(service=OuterRef("pk")).order_by("-created_at", "-id")
    services = (
        workspace.services.select_related("plan")
        .annotate(
            build_id=Subquery(latest_build.values("id")[:1]),
            build_status=Subquery(latest_build.values("status")[:1]),
            build_at=Subquery(latest_build.values("created_at")[:1]),
            job_id=Subquery(last_job.values("id")[:1]),
            job_status=Subquery(last_job.values("status")[:1]),
            job_at=Subquery(last_job.values("created_at")[:1]),
        )
        .order_by("name")
    )
    return render(request, "services/list.html", {"services": services, "tab": "services"})


@signed_in
@require_GET
def service_home(request: HtmxHttpRequest, service_id: str) -> HttpResponse:
    service, _ = get_service(request.user, service_id)
    return redirect("jobs", service.id)


# API keys


def _keys_context(request: HtmxHttpRequest, workspace, form=None, **extra):
    keys = ApiKey.objects.filter(workspace=workspace).select_related("user")
    assert request.user.is_authenticated  # signed_in
    if not request.membership.is_admin:
        keys = keys.filter(user=request.user)
    return {"keys": keys, "form": form or ApiKeyForm(), "tab": "api_keys", **extra}


# The new key's secret between the POST that made it and the GET that shows it (post/redirect/
# get): kept in the creator's session for that one display, then gone.
SESSION_NEW_KEY = "oneoff.new_api_key"
NEW_KEY_TTL = 300  # seconds a created key waits in the session for its one display


def _shown_once(request: HtmxHttpRequest, workspace) -> tuple[ApiKey | None, str]:
    """The key this session just created in ``workspace`` and its secret, taken out of the
    session (a reload shows it no more); (None, "") when there is none. Only the key's own
    creator, in its own workspace, while it is not revoked."""
    assert request.user.is_authenticated  # @signed_in
    held = request.session.pop(SESSION_NEW_KEY, None)
    if not isinstance(held, dict) or held.get("workspace") != workspace.id:
        return None, ""
    if not isinstance(held.get("key"), int):
        return None, ""
    key = ApiKey.objects.filter(
        pk=held["key"], workspace=workspace, user=request.user, revoked_at__isnull=True
    ).first()
    if key is None:
        return None, ""
    try:  # kept encrypted in the session row, and only for a few minutes
        secret = crypto.fernet().decrypt(str(held.get("secret", "")).encode(), ttl=NEW_KEY_TTL)
    except InvalidToken:
        return None, ""
    return key, secret.decode()


@signed_in
@require_http_methods(["GET", "POST"])
def api_keys(request: HtmxHttpRequest, workspace_id: str) -> HttpResponse:
    """Every member may hold keys of their own; a viewer's keys are read-only. Admins see and
    revoke everyone's keys in the workspace. Creation is capped (``services.apikeys``): a 429
    past the keys a user may create in an hour, a 400 when the workspace holds its most.
    A created key is shown once, on the GET the POST redirects to (a reload neither shows it
    again nor creates another)."""
    workspace, request.membership = get_workspace(request.user, workspace_id)
    if request.method == "GET":
        key, secret = _shown_once(request, workspace)
        context = _keys_context(request, workspace, new_key=key, secret=secret)
        response = render(request, "services/api_keys.html", context)
        if secret:
            response["Cache-Control"] = "no-store"
        return response
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        context = _keys_context(request, workspace, form)
        return render(request, "services/api_keys.html", context, status=400)
    read_only = form.cleaned_data["read_only"] or not request.membership.can_write
    assert request.user.is_authenticated  # @signed_in
    try:
        with transaction.atomic():
            key, secret = create_key(
                request.user, workspace, name=form.cleaned_data["name"], read_only=read_only
            )
            _audit_key(request, workspace, "api_key.create", key)
    except (Limited, Refused) as error:
        # Said in the form, above the button that was pressed.
        form.add_error(None, error.message)
        context = _keys_context(request, workspace, form)
        if isinstance(error, Refused):
            return render(request, "services/api_keys.html", context, status=400)
        response = render(request, "services/api_keys.html", context, status=429)
        response["Retry-After"] = str(error.retry_after)
        return response
    request.session[SESSION_NEW_KEY] = {
        "workspace": workspace.id,
        "key": key.pk,
        "secret": crypto.encrypt(secret),  # the session row never holds it in the clear
    }
    return redirect("api_keys", workspace.id)


@signed_in
@require_POST
def revoke_api_key(request: HtmxHttpRequest, workspace_id: str, key_id: int) -> HttpResponse:
    workspace, membership = get_workspace(request.user, workspace_id)
    keys = ApiKey.objects.filter(workspace=workspace, pk=key_id)
    assert request.user.is_authenticated  # signed_in
    if not membership.is_admin:
        keys = keys.filter(user=request.user)
    key = keys.first()
    if key is None:
        raise Http404("No such API key")
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if revoked:
            _audit_key(request, workspace, "api_key.revoke", key)
    return redirect("api_keys", workspace.id)


def _audit_key(request: HtmxHttpRequest, workspace, action: str, key: ApiKey) -> None:
    """A key by its prefix (never its secret) and whose it is."""
    record(
        actor_of(request),
        workspace,
        action,
        target_type="api_key",
        target_id=key.prefix,
        metadata={"name": key.name, "owner": key.user.email, "readOnly": key.read_only},
    )

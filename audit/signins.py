"""Sign-ins to the dashboard (and the Django admin), from Django's auth signals.

A sign-in is told to every workspace the user is a member of, one entry each, so each
workspace's admins see their members' sign-ins (and a user who joins later brings no history
with them). A failed sign-in records the attempted username, never the password, in the
workspaces of the user of that name if there is one; an unknown name goes in an entry of no
workspace (the Django admin shows those).
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from audit.models import AuditStatus
from audit.trail import Actor, actor_of, client_address, record
from services.models import Membership, Workspace


def _workspaces(user: User | None) -> list[Workspace | None]:
    if user is None:
        return [None]
    found = [m.workspace for m in Membership.objects.filter(user=user).select_related("workspace")]
    return list(found) or [None]


def _from_a_client(request: Any) -> bool:
    """A sign-in over HTTP; not one made in code (a test client's ``force_login`` signs in
    with a bare request that no client sent)."""
    return request is not None and "REMOTE_ADDR" in request.META


@receiver(user_logged_in, dispatch_uid="audit.signin")
def signed_in(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    if not _from_a_client(request):
        return
    actor = Actor(user=user, address=client_address(request))
    for workspace in _workspaces(user):
        record(actor, workspace, "signin", target_type="user", target_id=user.get_username())


@receiver(user_login_failed, dispatch_uid="audit.signin_failed")
def signin_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    if not _from_a_client(request):
        return
    User = get_user_model()
    attempted = str(credentials.get(User.USERNAME_FIELD) or credentials.get("username") or "")
    attempted = attempted[:150]
    user = User._default_manager.filter(**{User.USERNAME_FIELD: attempted}).first()
    actor = Actor(address=actor_of(request).address)
    for workspace in _workspaces(user):
        record(
            actor,
            workspace,
            "signin.failed",
            target_type="user",
            target_id=attempted,
            status=AuditStatus.FAILURE,
            actor_name=attempted,
        )

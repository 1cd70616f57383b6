"""The frame of every dashboard page: the workspace, the reader's role and the switcher's list.

A view shows the frame by keeping the membership its ownership helper returned on the request::

    service, request.membership = get_service(request.user, service_id)

and passes only its own context. Pages without a membership (sign-in, "no workspace yet", the
admin) get no frame.
"""

from functools import partial

from services.models import Workspace
from services.prepared import Prepared

# The workspace the reader used last: the home page opens it.
SESSION_WORKSPACE = "workspace"


def frame(request) -> dict:
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    workspace = membership.workspace
    if request.session.get(SESSION_WORKSPACE) != workspace.id:
        request.session[SESSION_WORKSPACE] = workspace.id
    return {
        "workspace": workspace,
        "membership": membership,
        "can_write": membership.can_write,
        "is_admin": membership.is_admin,
        # Called by the template where it lists them (the full page; an htmx partial has no
        # switcher and makes no query).
        "workspaces": partial(_WORKSPACES.run, user_id=request.user.pk),
    }


def _workspaces(shape, *, user_id: int):
    """The switcher's workspaces: ``Workspace.objects.for_user`` of the user, by name."""
    return Workspace.objects.filter(memberships__user_id=user_id).order_by("name")


# Compiled once (services.prepared): every full page lists them.
_WORKSPACES = Prepared(_workspaces)

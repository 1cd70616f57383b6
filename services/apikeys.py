"""The one way a key is created for a tenant (the dashboard's API keys page and
``manage.py createapikey``), within two caps.

Rate limits count per user and per workspace (``services.limits``), so extra keys no longer buy
extra requests; the caps bound the keys themselves: a user creates at most
``API_KEYS_PER_HOUR`` keys in any hour (revoked ones count: revoking and minting again is still
minting), and a workspace holds at most ``API_KEYS_PER_WORKSPACE`` active keys. Both are counted
in the database, exactly and across every path, with the workspace's and the user's rows locked
so that concurrent creations are counted one after the other.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from services.errors import Limited, Refused
from services.models import ApiKey, Workspace

HOUR = timedelta(hours=1)


def _keys(count: int, adjective: str = "") -> str:
    return f"{count} {adjective}API key{'' if count == 1 else 's'}"


def create_key(
    user: User, workspace: Workspace, *, name: str = "", read_only: bool = False
) -> tuple[ApiKey, str]:
    """Issue a key (``ApiKey.issue``: the key and its secret, shown once) unless the user created
    ``API_KEYS_PER_HOUR`` keys in the last hour (``Limited``) or the workspace holds
    ``API_KEYS_PER_WORKSPACE`` active keys (``Refused``)."""
    per_hour, per_workspace = settings.API_KEYS_PER_HOUR, settings.API_KEYS_PER_WORKSPACE
    with transaction.atomic():
        # Always the workspace first, then the user: one order, so two creations never deadlock.
        Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        now = timezone.now()
        recent = list(
            ApiKey.objects.filter(user=user, created_at__gt=now - HOUR)
            .order_by("-created_at")
            .values_list("created_at", flat=True)[:per_hour]
        )
        if len(recent) >= per_hour:
            # The oldest of the last ``per_hour`` leaves the hour first.
            retry = int((recent[-1] + HOUR - now).total_seconds()) + 1 if recent else 3600
            raise Limited(
                f"you may create at most {_keys(per_hour)} an hour (API_KEYS_PER_HOUR); "
                f"retry in {retry} s",
                retry_after=retry,
            )
        active = ApiKey.objects.active().filter(workspace=workspace).count()
        if active >= per_workspace:
            raise Refused(
                f"workspace {workspace.name} holds {_keys(active, 'active ')}, the most allowed "
                f"is {per_workspace} (API_KEYS_PER_WORKSPACE); revoke one it no longer needs first"
            )
        return ApiKey.issue(user, workspace, name=name, read_only=read_only)

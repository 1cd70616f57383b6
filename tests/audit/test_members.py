"""Member changes, made in the Django admin (Oneoff's one place to manage members): added, role
changed and removed, each recorded once in the member's workspace, by the staff user, with the
address."""

import pytest
from django.test import Client

from audit.models import AuditEntry
from services.models import Membership, Role
from tests.helpers import make_user

ADDRESS = "192.0.2.44"


@pytest.fixture
def staff(django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    boss = django_user_model.objects.create_superuser("root", "root@x.test", "pw")
    client = Client(REMOTE_ADDR=ADDRESS)
    client.force_login(boss)
    client.boss = boss
    return client


def _only(action: str) -> AuditEntry:
    (entry,) = AuditEntry.objects.filter(action=action)
    return entry


def test_the_membership_admin_records_add_role_and_remove(staff, workspace):
    newcomer = make_user("nick@acme.test")
    response = staff.post(
        "/admin/services/membership/add/",
        {
            "workspace": workspace.id,
            "user": newcomer.pk,
            "role": Role.VIEWER,
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    member = Membership.objects.get(user=newcomer)
    added = _only("member.add")
    assert added.workspace_id == workspace.id
    assert added.target_id == "nick@acme.test"
    assert added.actor_id == staff.boss.pk
    assert added.address == ADDRESS
    assert added.metadata == {"role": "viewer"}

    response = staff.post(
        f"/admin/services/membership/{member.pk}/change/",
        {
            "workspace": workspace.id,
            "user": newcomer.pk,
            "role": Role.ADMIN,
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302
    assert _only("member.role").metadata == {"role": "admin", "previousRole": "viewer"}

    response = staff.post(f"/admin/services/membership/{member.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert _only("member.remove").target_id == "nick@acme.test"
    assert AuditEntry.objects.count() == 3


def test_the_workspace_admins_member_inline_is_recorded(staff, workspace, owner, viewer):
    own = Membership.objects.get(user=owner)
    theirs = Membership.objects.get(user=viewer)
    prefix = "memberships"
    data = {
        "name": workspace.name,
        "email": workspace.email,
        "log_retention_days": workspace.log_retention_days,
        "monthly_budget": "",
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        f"{prefix}-TOTAL_FORMS": "2",
        f"{prefix}-INITIAL_FORMS": "2",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, (member, role) in enumerate(((own, Role.ADMIN), (theirs, Role.DEVELOPER))):
        data.update(
            {
                f"{prefix}-{index}-id": member.pk,
                f"{prefix}-{index}-workspace": workspace.id,
                f"{prefix}-{index}-user": member.user_id,
                f"{prefix}-{index}-role": role,
                f"{prefix}-{index}-created_at_0": "2026-01-01",
                f"{prefix}-{index}-created_at_1": "00:00:00",
            }
        )
    response = staff.post(f"/admin/services/workspace/{workspace.pk}/change/", data)
    assert response.status_code == 302, response.content[:3000]
    changed = _only("member.role")
    assert changed.target_id == "vera@acme.test"
    assert changed.metadata == {"role": "developer", "previousRole": "viewer"}
    assert AuditEntry.objects.count() == 1

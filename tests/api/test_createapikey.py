"""manage.py createapikey EMAIL --workspace NAME [--read-only]."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from services.models import ApiKey, Membership, Role, Workspace


def run(*args) -> list[str]:
    out = StringIO()
    call_command("createapikey", *args, stdout=out)
    return out.getvalue().splitlines()


def test_it_creates_user_workspace_and_a_working_key(db):
    lines = run("ci@acme.test", "--workspace", "Acme CI")
    secret = lines[-1]
    assert secret.startswith("oneoff_")
    assert " " not in secret
    ws = Workspace.objects.get(name="Acme CI")
    assert Membership.objects.get(workspace=ws, user__email="ci@acme.test").role == Role.ADMIN
    key = ApiKey.objects.get()
    assert key.key_hash != secret
    assert secret not in "\n".join(lines[:-1])
    r = Client().get("/v1/owners", headers={"Authorization": f"Bearer {secret}"})
    assert r.json()[0]["owner"]["id"] == ws.id


def test_it_reuses_an_existing_user_and_workspace(owner, workspace):
    secret = run(owner.email, "--workspace", workspace.name, "--read-only")[-1]
    key = ApiKey.objects.get()
    assert key.read_only
    assert key.user == owner
    assert Workspace.objects.count() == 1
    r = Client().post(
        "/v1/services/srv-00000000000000000000/jobs",
        '{"startCommand": "true"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )  # fmt: skip
    assert r.status_code == 403


def test_a_bad_email_is_an_error(db):
    with pytest.raises(CommandError):
        run("not-an-email", "--workspace", "X")

from services import crypto
from services.models import ApiKey


def url(workspace):
    return f"/workspaces/{workspace.id}/api-keys/"


def secret_in(body: str) -> str:
    return body.split('class="secret-value" type="text" readonly value="')[1].split('"')[0]


def test_create_shows_the_secret_once(owner, workspace, login):
    client = login(owner)
    r = client.post(url(workspace), {"name": "ci"})
    # Post/redirect/get: the POST answers with a redirect, the secret nowhere in it.
    assert r.status_code == 302
    assert r["Location"] == url(workspace)
    key = ApiKey.objects.get()
    shown = client.get(url(workspace))
    body = shown.content.decode()
    assert shown["Cache-Control"] == "no-store"
    assert "shown this once" in body
    secret = secret_in(body)
    assert ApiKey.authenticate(secret) == key
    assert f'data-copy="{secret}"' in body  # the copy button
    assert not key.read_only
    # A reload shows it no more, and creates no other key.
    again = client.get(url(workspace)).content.decode()
    assert secret not in again
    assert "shown this once" not in again
    assert key.prefix in again
    assert ApiKey.objects.count() == 1


def test_the_secret_is_only_in_the_creators_session_until_shown(owner, developer, workspace, login):
    creator = login(owner)
    creator.post(url(workspace), {"name": "ci"})
    held = creator.session["oneoff.new_api_key"]
    assert held["key"] == ApiKey.objects.get().pk
    secret = crypto.decrypt(held["secret"])
    assert ApiKey.authenticate(secret) == ApiKey.objects.get()
    # Another session of the same user, and another member (an admin sees the key's prefix):
    # never the secret.
    for other in (login(owner), login(developer)):
        body = other.get(url(workspace)).content.decode()
        assert secret not in body
        assert "shown this once" not in body
    assert secret_in(creator.get(url(workspace)).content.decode()) == secret
    assert "oneoff.new_api_key" not in creator.session


def test_the_secret_shows_only_in_its_own_workspace(owner, workspace, other_workspace, login):
    from services.models import Membership, Role

    Membership.objects.create(user=owner, workspace=other_workspace, role=Role.ADMIN)
    client = login(owner)
    client.post(url(workspace), {"name": "ci"})
    secret = crypto.decrypt(client.session["oneoff.new_api_key"]["secret"])
    body = client.get(url(other_workspace)).content.decode()
    assert secret not in body
    assert "oneoff.new_api_key" not in client.session  # dropped, not kept for later


def test_a_key_revoked_before_its_display_is_not_shown(owner, workspace, login):
    client = login(owner)
    client.post(url(workspace), {"name": "ci"})
    secret = crypto.decrypt(client.session["oneoff.new_api_key"]["secret"])
    ApiKey.objects.update(revoked_at="2026-01-01T00:00Z")
    assert secret not in client.get(url(workspace)).content.decode()


def test_the_waiting_secret_is_encrypted_and_expires(owner, workspace, login):
    """The session row (the database's) never holds the secret in the clear, and a key not
    displayed within NEW_KEY_TTL seconds never is."""
    import time

    from django.contrib.sessions.models import Session

    from dashboard.views.workspace import NEW_KEY_TTL

    client = login(owner)
    client.post(url(workspace), {"name": "ci"})
    secret = crypto.decrypt(client.session["oneoff.new_api_key"]["secret"])
    rows = [s.get_decoded() for s in Session.objects.all()]
    assert rows
    assert all(secret not in repr(row) for row in rows)
    session = client.session
    stale = crypto.fernet().encrypt_at_time(secret.encode(), int(time.time()) - NEW_KEY_TTL - 1)
    session["oneoff.new_api_key"] = {**session["oneoff.new_api_key"], "secret": stale.decode()}
    session.save()
    body = client.get(url(workspace)).content.decode()
    assert secret not in body
    assert "shown this once" not in body


def test_read_only_keys(owner, workspace, login):
    login(owner).post(url(workspace), {"name": "ro", "read_only": "on"})
    assert ApiKey.objects.get().read_only


def test_a_viewers_keys_are_read_only(viewer, workspace, login):
    login(viewer).post(url(workspace), {"name": "mine"})
    assert ApiKey.objects.get().read_only


def test_members_see_their_own_keys_admins_see_all(owner, developer, workspace, login):
    _mine, _ = ApiKey.issue(developer, workspace, name="dev-key")
    _theirs, _ = ApiKey.issue(owner, workspace, name="owner-key")
    body = login(developer).get(url(workspace)).content.decode()
    assert "dev-key" in body
    assert "owner-key" not in body
    body = login(owner).get(url(workspace)).content.decode()
    assert "dev-key" in body
    assert "owner-key" in body


def test_revoke(owner, workspace, login):
    key, _ = ApiKey.issue(owner, workspace)
    r = login(owner).post(f"{url(workspace)}{key.pk}/revoke/")
    assert r.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "revoked" in login(owner).get(url(workspace)).content.decode()


def test_member_cannot_revoke_someone_elses_key(owner, developer, workspace, login):
    key, _ = ApiKey.issue(owner, workspace)
    assert login(developer).post(f"{url(workspace)}{key.pk}/revoke/").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_a_too_long_name_is_400(owner, workspace, login):
    r = login(owner).post(url(workspace), {"name": "x" * 101})
    assert r.status_code == 400
    assert 'id="id_name_error"' in r.content.decode()
    assert not ApiKey.objects.exists()


def test_outsider_gets_404(outsider, owner, workspace, login):
    key, _ = ApiKey.issue(owner, workspace)
    client = login(outsider)
    assert client.get(url(workspace)).status_code == 404
    assert client.post(url(workspace), {"name": "x"}).status_code == 404
    assert client.post(f"{url(workspace)}{key.pk}/revoke/").status_code == 404


def test_anonymous_is_redirected(client, workspace):
    assert client.get(url(workspace)).status_code == 302


def test_revoke_by_get_is_405(owner, workspace, login):
    key, _ = ApiKey.issue(owner, workspace)
    assert login(owner).get(f"{url(workspace)}{key.pk}/revoke/").status_code == 405

from services.models import ApiKey


def url(workspace):
    return f"/workspaces/{workspace.id}/api-keys/"


def test_create_shows_the_secret_once(owner, workspace, login):
    client = login(owner)
    r = client.post(url(workspace), {"name": "ci"})
    key = ApiKey.objects.get()
    body = r.content.decode()
    assert r["Cache-Control"] == "no-store"
    assert "shown this once" in body
    secret = body.split('class="secret-value" type="text" readonly value="')[1].split('"')[0]
    assert ApiKey.authenticate(secret) == key
    assert not key.read_only
    again = client.get(url(workspace)).content.decode()
    assert secret not in again
    assert key.prefix in again


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

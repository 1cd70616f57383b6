def test_login_page_renders(client):
    r = client.get("/login/")
    assert r.status_code == 200
    body = r.content.decode()
    assert 'name="csrfmiddlewaretoken"' in body
    assert '<label for="id_password">' in body


def test_sign_in_and_out(client, owner, workspace):
    r = client.post("/login/", {"username": "alice@acme.test", "password": "pw"})
    assert r.status_code == 302
    assert r["Location"] == "/"
    r = client.get("/")
    assert r["Location"] == f"/workspaces/{workspace.id}/"
    r = client.post("/logout/")
    assert r.status_code == 302
    assert client.get("/").status_code == 302
    assert client.get("/")["Location"].startswith("/login/")


def test_wrong_password_is_refused(client, owner):
    r = client.post("/login/", {"username": "alice@acme.test", "password": "nope"})
    assert r.status_code == 200
    assert "Please enter a correct username and password" in r.content.decode()


def test_sign_in_redirects_to_next(client, owner, service):
    r = client.post(
        "/login/",
        {"username": "alice@acme.test", "password": "pw", "next": f"/services/{service.id}/jobs/"},
    )
    assert r["Location"] == f"/services/{service.id}/jobs/"


def test_sign_in_refuses_an_offsite_next(client, owner):
    r = client.post(
        "/login/", {"username": "alice@acme.test", "password": "pw", "next": "https://evil.test/"}
    )
    assert r["Location"] == "/"


def test_logout_by_get_is_refused(client, owner):
    client.force_login(owner)
    assert client.get("/logout/").status_code == 405

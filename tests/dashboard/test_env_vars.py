from services.models import EnvVar
from tests.helpers import htmx

SECRET = "s3cr3t-value-<b>"


def url(service):
    return f"/services/{service.id}/env/"


def test_admin_sees_names_and_masked_values(owner, service, login):
    EnvVar.objects.create(service=service, key="DATABASE_URL", value=SECRET)
    body = login(owner).get(url(service)).content.decode()
    assert "DATABASE_URL" in body
    assert "s3cr3t" not in body
    assert "Reveal" in body


def test_admin_reveals_one_value(owner, service, login):
    EnvVar.objects.create(service=service, key="DATABASE_URL", value=SECRET)
    r = login(owner).get(url(service) + "DATABASE_URL/reveal/", **htmx())
    body = r.content.decode()
    assert "s3cr3t-value-&lt;b&gt;" in body
    assert "Hide" in body
    r = login(owner).get(url(service) + "DATABASE_URL/reveal/?hide=1", **htmx())
    assert "s3cr3t" not in r.content.decode()


def test_developer_and_viewer_see_names_only(developer, viewer, service, login):
    EnvVar.objects.create(service=service, key="DATABASE_URL", value=SECRET)
    for user in (developer, viewer):
        client = login(user)
        body = client.get(url(service)).content.decode()
        assert "DATABASE_URL" in body
        assert "s3cr3t" not in body
        assert "Reveal" not in body
        assert client.get(url(service) + "DATABASE_URL/reveal/").status_code == 403


def test_admin_adds_and_changes_a_value(owner, service, login):
    client = login(owner)
    r = client.post(url(service), {"key": "GREETING", "value": "hi"})
    assert r.status_code == 302
    client.post(url(service), {"key": "GREETING", "value": "hello"})
    assert service.env_dict() == {"GREETING": "hello"}


def test_a_value_with_a_control_character_is_400_naming_the_key(owner, service, login):
    r = login(owner).post(url(service), {"key": "COLOUR", "value": "red\x1b[0m"})
    assert r.status_code == 400
    page = r.content.decode()
    assert 'id="id_value_error"' in page
    assert "COLOUR" in page.split('id="id_value_error"')[1][:300]
    assert not EnvVar.objects.exists()


def test_a_bad_name_is_400(owner, service, login):
    r = login(owner).post(url(service), {"key": "1 bad", "value": "x"})
    assert r.status_code == 400
    assert 'id="id_key_error"' in r.content.decode()
    assert not EnvVar.objects.exists()


def test_developer_and_viewer_cannot_change(developer, viewer, service, login):
    EnvVar.objects.create(service=service, key="KEEP", value="1")
    for user in (developer, viewer):
        client = login(user)
        assert client.post(url(service), {"key": "NEW", "value": "x"}).status_code == 403
        assert client.post(url(service) + "KEEP/delete/").status_code == 403
    assert service.env_dict() == {"KEEP": "1"}


def test_admin_deletes(owner, service, login):
    EnvVar.objects.create(service=service, key="GONE", value="1")
    r = login(owner).post(url(service) + "GONE/delete/", **htmx())
    assert r.status_code == 200
    assert not EnvVar.objects.exists()


def test_unknown_key_is_404(owner, service, login):
    assert login(owner).get(url(service) + "NOPE/reveal/").status_code == 404


def test_outsider_gets_404(outsider, service, login):
    EnvVar.objects.create(service=service, key="K", value="v")
    client = login(outsider)
    assert client.get(url(service)).status_code == 404
    assert client.get(url(service) + "K/reveal/").status_code == 404
    assert client.post(url(service), {"key": "X", "value": "y"}).status_code == 404


def test_anonymous_is_redirected(client, service):
    assert client.get(url(service)).status_code == 302


def test_empty_state(owner, service, login):
    assert "No environment variables" in login(owner).get(url(service)).content.decode()


def test_keys_set_through_the_api_with_odd_characters_work(owner, service, login):
    EnvVar.objects.create(service=service, key="a/b c?#<x>", value="odd")
    client = login(owner)
    body = client.get(url(service)).content.decode()
    assert "a/b c?#&lt;x&gt;" in body
    assert "/env/a/b%20c%3F%23%3Cx%3E/reveal/" in body
    r = client.get(url(service) + "a/b%20c%3F%23%3Cx%3E/reveal/", **htmx())
    assert "odd" in r.content.decode()

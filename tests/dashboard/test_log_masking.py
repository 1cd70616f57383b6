"""Log masking in the dashboard: the service's Settings page turns it on and off (admins; a
viewer gets a 403, another workspace's admin a 404), the env page marks a variable secret, and
the job page says whether masking is on."""

import re

import pytest

from jobs.launch import create_job
from services.models import EnvVar, Service


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr("jobs.launch.enqueue_start", lambda job_id: True)


def masking_url(service):
    return f"/services/{service.id}/settings/masking/"


def mask_secrets(service) -> bool:
    return Service.objects.get(pk=service.pk).mask_secrets


def test_an_admin_turns_masking_off_and_on(owner, service, login):
    client = login(owner)
    body = client.get(f"/services/{service.id}/settings/").content.decode()
    assert 'id="mask-secrets">masked (****)' in body
    (box,) = re.findall(r'<input[^>]*name="mask_secrets"[^>]*>', body)
    assert "checked" in box
    r = client.post(masking_url(service), {})  # the box unticked
    assert r.status_code == 302
    assert mask_secrets(service) is False
    body = client.get(f"/services/{service.id}/settings/").content.decode()
    assert "shown as printed" in body
    client.post(masking_url(service), {"mask_secrets": "on"})
    assert mask_secrets(service) is True


def test_a_viewer_or_developer_cannot_change_it(viewer, developer, service, login):
    body = login(viewer).get(f"/services/{service.id}/settings/").content.decode()
    assert 'name="mask_secrets"' not in body
    for user in (viewer, developer):
        assert login(user).post(masking_url(service), {}).status_code == 403
    assert mask_secrets(service) is True


def test_another_workspaces_admin_gets_a_404(outsider, service, login, client):
    assert login(outsider).post(masking_url(service), {}).status_code == 404
    assert client.post(masking_url(service), {}).status_code == 302  # to sign in
    assert mask_secrets(service) is True


def test_the_env_page_marks_a_variable_secret(owner, viewer, service, login):
    r = login(owner).post(
        f"/services/{service.id}/env/", {"key": "PIN", "value": "4242", "secret": "on"}
    )
    assert r.status_code == 302, r.content
    assert EnvVar.objects.get(service=service, key="PIN").secret is True
    body = login(viewer).get(f"/services/{service.id}/env/").content.decode()
    assert '<span class="badge secret"' in body
    assert "4242" not in body
    # Saved again without the box: no longer secret.
    login(owner).post(f"/services/{service.id}/env/", {"key": "PIN", "value": "4242"})
    assert EnvVar.objects.get(service=service, key="PIN").secret is False


def test_the_job_page_says_whether_masking_is_on(viewer, service, build, login):
    job = create_job(service, "echo hi")
    page = f"/services/{service.id}/jobs/{job.id}/"
    body = login(viewer).get(page).content.decode()
    assert '<dd id="log-masking">on' in body
    Service.objects.filter(pk=service.pk).update(mask_secrets=False)
    body = login(viewer).get(page).content.decode()
    assert '<dd id="log-masking">off' in body

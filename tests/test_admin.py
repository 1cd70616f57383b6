import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from services.models import EnvVar, RegistryCredential


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_superuser("root@example.test", "root@example.test", "pw")
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/services/plan/",
        "/admin/services/plan/plan-srv-006/change/",
        "/admin/services/workspace/",
        "/admin/services/workspace/add/",
        "/admin/services/membership/",
        "/admin/services/service/",
        "/admin/services/service/add/",
        "/admin/services/registrycredential/",
        "/admin/services/registrycredential/add/",
        "/admin/jobs/job/",
        "/admin/logstreams/workspacelogstream/",
        "/admin/logstreams/servicelogstream/",
    ],
)
def test_admin_pages_load(staff_client, url):
    assert staff_client.get(url).status_code == 200


def test_admin_masks_env_values(staff_client, service):
    EnvVar.objects.create(service=service, key="API_TOKEN", value="s3cr3t-value")
    response = staff_client.get(f"/admin/services/service/{service.id}/change/")
    assert response.status_code == 200
    assert b"API_TOKEN" in response.content
    assert b"s3cr3t-value" not in response.content


def test_admin_needs_staff(client, owner):
    client.force_login(owner)
    assert client.get("/admin/services/plan/").status_code == 302


def _staff(client, name: str, *codenames: str):
    user = get_user_model().objects.create_user(name, f"{name}@example.test", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def test_view_only_staff_never_see_env_values(client, service):
    var = EnvVar.objects.create(service=service, key="API_TOKEN", value="s3cr3t-value")
    staff = _staff(client, "viewonly", "view_service", "view_envvar")
    for page in (
        f"/admin/services/service/{service.id}/change/",
        "/admin/services/envvar/",
        f"/admin/services/envvar/{var.pk}/change/",
    ):
        response = staff.get(page)
        assert response.status_code == 200, page
        assert b"API_TOKEN" in response.content, page
        assert b"s3cr3t-value" not in response.content, page
        assert b"****" in response.content or page.endswith("/envvar/"), page


def test_staff_who_may_change_env_vars_still_edit_them(client, service):
    var = EnvVar.objects.create(service=service, key="API_TOKEN", value="s3cr3t-value")
    staff = _staff(client, "editor", "view_service", "view_envvar", "change_envvar")
    page = f"/admin/services/envvar/{var.pk}/change/"
    response = staff.get(page)
    assert response.status_code == 200
    assert b"s3cr3t-value" not in response.content  # the write-only widget
    response = staff.post(page, {"service": service.id, "key": "API_TOKEN", "value": "rotated"})
    assert response.status_code == 302, response.content
    var.refresh_from_db()
    assert var.value == "rotated"
    response = staff.post(page, {"service": service.id, "key": "API_TOKEN", "value": "x\x1by"})
    assert response.status_code == 200
    assert b"U+001B" in response.content
    var.refresh_from_db()
    assert var.value == "rotated"


def test_the_admin_never_shows_a_repository_credential(staff_client, service, make_build):
    service.repo_url = "https://deploy:ghp_admin_secret_123@git.example/acme/app.git"
    service.save()
    build = make_build(service, repo_url=service.repo_url, repo_credential=service.repo_credential)
    for url in (
        f"/admin/services/service/{service.id}/change/",
        f"/admin/services/build/{build.id}/change/",
        "/admin/services/build/",
    ):
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert b"ghp_admin_secret_123" not in response.content, url


def test_registry_tokens_are_write_only_in_the_admin(client, workspace):
    credential = RegistryCredential.objects.create(
        workspace=workspace, name="hub", registry="DOCKER", username="bot", auth_token="s3cr3t-tok"
    )
    page = f"/admin/services/registrycredential/{credential.pk}/change/"
    viewer = _staff(client, "viewreg", "view_registrycredential")
    for url in ("/admin/services/registrycredential/", page):
        response = viewer.get(url)
        assert response.status_code == 200, url
        assert b"hub" in response.content, url
        assert b"s3cr3t-tok" not in response.content, url

    editor = _staff(client, "editreg", "view_registrycredential", "change_registrycredential")
    response = editor.get(page)
    assert response.status_code == 200
    assert b"s3cr3t-tok" not in response.content
    fields = {"workspace": workspace.pk, "name": "hub", "registry": "DOCKER", "username": "bot"}
    assert editor.post(page, {**fields, "auth_token": ""}).status_code == 302
    credential.refresh_from_db()
    assert credential.auth_token == "s3cr3t-tok"
    assert editor.post(page, {**fields, "auth_token": "rotated"}).status_code == 302
    credential.refresh_from_db()
    assert credential.auth_token == "rotated"

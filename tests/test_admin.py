import pytest
from django.contrib.auth import get_user_model

from services.models import EnvVar


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

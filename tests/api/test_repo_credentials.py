"""A repository URL's credential is split off when set through the API and never shown."""

from services.models import Service

TOKEN = "s3cret-token"


def test_a_viewer_never_sees_the_credential(owner_api, viewer_api, workspace):
    created = owner_api.post(
        "/v1/services",
        {
            "type": "web_service",
            "name": "app",
            "ownerId": workspace.id,
            "repo": f"https://user:{TOKEN}@git.example/acme/app.git",
        },
    )
    assert created.status_code == 201, created.content
    service_id = created.json()["service"]["id"]
    assert TOKEN not in created.content.decode()

    response = viewer_api.get(f"/v1/services/{service_id}")

    assert response.status_code == 200
    assert TOKEN not in response.content.decode()
    assert response.json()["repo"] == "https://***@git.example/acme/app.git"
    service = Service.objects.get(pk=service_id)
    assert service.repo_url == "https://git.example/acme/app.git"
    assert service.repo_credential == f"user:{TOKEN}"


def test_writing_back_the_masked_url_keeps_the_credential_and_a_new_url_drops_it(
    owner_api, make_service
):
    service = make_service(repo_url=f"https://user:{TOKEN}@git.example/a.git", branch="main")
    url = f"/v1/services/{service.id}"

    assert owner_api.patch(url, {"repo": "https://***@git.example/a.git"}).status_code == 200
    assert Service.objects.get(pk=service.pk).repo_credential == f"user:{TOKEN}"

    assert owner_api.patch(url, {"repo": "https://git.example/b.git"}).status_code == 200
    service.refresh_from_db()
    assert (service.repo_url, service.repo_credential) == ("https://git.example/b.git", "")

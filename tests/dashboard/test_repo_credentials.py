"""The builds list and the build page show a repository's credential as ***."""

TOKEN = "s3cret-token"
SHOWN = "https://***@git.example/acme/app.git"


def test_the_builds_pages_mask_the_credential(viewer, make_service, make_build, login):
    service = make_service(repo_url=f"https://user:{TOKEN}@git.example/acme/app.git")
    build = make_build(service, repo_url=f"https://user:{TOKEN}@git.example/acme/app.git")
    client = login(viewer)

    for page in (f"/services/{service.id}/builds/", f"/services/{service.id}/builds/{build.id}/"):
        body = client.get(page).content.decode()
        assert TOKEN not in body, page
        assert SHOWN in body, page

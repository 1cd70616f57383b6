from jobs.models import JobStatus
from tests.helpers import htmx


def url(workspace):
    return f"/workspaces/{workspace.id}/"


def test_it_lists_services_with_latest_build_and_last_job(
    owner, workspace, service, make_job, login
):
    job = make_job(status=JobStatus.FAILED)
    body = login(owner).get(url(workspace)).content.decode()
    assert f'href="/services/{service.id}/jobs/">web</a>' in body
    assert "Web service" in body
    assert "Starter" in body
    assert 'class="badge succeeded"' in body  # latest build
    assert f"/services/{service.id}/jobs/{job.id}/" in body
    assert 'class="badge failed"' in body


def test_it_has_an_empty_state(owner, workspace, login):
    body = login(owner).get(url(workspace)).content.decode()
    assert "No services yet" in body


def test_it_shows_only_this_workspaces_services(
    owner, outsider, workspace, other_workspace, make_service, login
):
    make_service(other_workspace, name="globex-secret")
    make_service(name="acme-web")
    body = login(owner).get(url(workspace)).content.decode()
    assert "acme-web" in body
    assert "globex-secret" not in body


def test_the_switcher_lists_the_readers_workspaces(owner, workspace, other_workspace, login):
    from services.models import Membership

    Membership.objects.create(workspace=other_workspace, user=owner, role="viewer")
    client = login(owner)
    body = client.get(url(workspace)).content.decode()
    assert f'href="/workspaces/{other_workspace.id}/"' in body
    client.get(url(other_workspace))
    assert client.get("/")["Location"] == url(other_workspace)


def test_outsider_gets_404(outsider, workspace, login):
    assert login(outsider).get(url(workspace)).status_code == 404


def test_anonymous_is_redirected(client, workspace):
    assert client.get(url(workspace))["Location"].startswith("/login/")


def test_post_is_405(owner, workspace, login):
    assert login(owner).post(url(workspace)).status_code == 405


def test_a_user_without_workspace_is_told_what_to_do(login, db):
    from tests.helpers import make_user

    body = login(make_user("new@acme.test")).get("/").content.decode()
    assert "not in a workspace yet" in body


def test_nav_links_for_admins_and_staff(owner, viewer, workspace, login):
    body = login(owner).get(url(workspace)).content.decode()
    assert "/settings/log-stream/" in body
    assert "/admin/" not in body
    owner.is_staff = True
    owner.save()
    assert 'href="/admin/"' in login(owner).get(url(workspace)).content.decode()
    assert "/settings/log-stream/" not in login(viewer).get(url(workspace)).content.decode()


def test_service_home_redirects_to_jobs(owner, service, login, outsider):
    r = login(owner).get(f"/services/{service.id}/")
    assert r["Location"] == f"/services/{service.id}/jobs/"
    assert login(outsider).get(f"/services/{service.id}/").status_code == 404


def test_htmx_request_gets_the_page(owner, workspace, login):
    r = login(owner).get(url(workspace), **htmx())
    assert r.status_code == 200


def test_the_switcher_never_lists_a_workspace_of_the_reader_before(
    owner, outsider, workspace, other_workspace, login
):
    # The switcher's query is compiled once for every reader (services.prepared): the second
    # reader must get their own workspaces, not the first one's.
    first = login(owner).get(url(workspace)).content.decode()
    assert f'href="/workspaces/{workspace.id}/"' in first
    second = login(outsider).get(url(other_workspace)).content.decode()
    assert f'href="/workspaces/{other_workspace.id}/"' in second
    assert workspace.id not in second
    assert workspace.name not in second

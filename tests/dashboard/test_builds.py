from services.models import Build, BuildLogLine, BuildStatus
from tests.helpers import htmx


def list_url(service):
    return f"/services/{service.id}/builds/"


def build_url(build):
    return f"/services/{build.service_id}/builds/{build.id}/"


def add_build_lines(build, texts):
    from django.utils import timezone

    BuildLogLine.objects.bulk_create(
        BuildLogLine(build=build, seq=i, timestamp=timezone.now(), text=t)
        for i, t in enumerate(texts, start=1)
    )


def test_it_lists_builds(owner, service, build, login):
    body = login(owner).get(list_url(service)).content.decode()
    assert build.id in body
    assert "Build now" in body


def test_empty_state(owner, service, login):
    body = login(owner).get(list_url(service)).content.decode()
    assert "No builds yet" in body


def test_viewer_sees_no_build_button_and_cannot_build(viewer, service, login):
    client = login(viewer)
    assert "Build now" not in client.get(list_url(service)).content.decode()
    assert client.post(f"/services/{service.id}/builds/new/").status_code == 403
    assert not Build.objects.exists()


def test_developer_triggers_a_build(developer, service, login):
    r = login(developer).post(f"/services/{service.id}/builds/new/")
    build = Build.objects.get()
    assert r["Location"] == build_url(build)
    assert build.created_by == developer


def test_outsider_gets_404(outsider, service, build, login):
    client = login(outsider)
    assert client.get(list_url(service)).status_code == 404
    assert client.get(build_url(build)).status_code == 404
    assert client.post(f"/services/{service.id}/builds/new/").status_code == 404


def test_anonymous_is_redirected(client, service, build):
    assert client.get(list_url(service)).status_code == 302
    assert client.get(build_url(build)).status_code == 302


def test_build_page_shows_its_log_escaped(owner, build, login):
    add_build_lines(build, ["Step 1/3 : FROM busybox", "<script>x</script>"])
    body = login(owner).get(build_url(build)).content.decode()
    assert "Step 1/3" in body
    assert "&lt;script&gt;x&lt;/script&gt;" in body
    assert "<script>x" not in body
    assert build.image_id in body
    assert 'id="log-poller"' not in body


def test_a_running_build_polls_its_log(owner, service, make_build, login):
    build = make_build(service, status=BuildStatus.BUILDING)
    add_build_lines(build, ["a", "b"])
    client = login(owner)
    body = client.get(build_url(build)).content.decode()
    assert "logs/?after=2&amp;status=building" in body
    r = client.get(build_url(build) + "logs/?after=1&status=building", **htmx())
    assert 'id="L2"' in r.content.decode()
    assert 'id="log-poller"' in r.content.decode()
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.SUCCEEDED)
    r = client.get(build_url(build) + "logs/?after=2&status=building", **htmx())
    body = r.content.decode()
    assert "log-poller" not in body
    assert 'id="build-summary"' in body
    assert 'hx-swap-oob="true"' in body


def test_build_log_bad_cursor_is_400(owner, build, login):
    assert login(owner).get(build_url(build) + "logs/?after=x").status_code == 400


def test_build_page_htmx_gets_the_summary(owner, build, login):
    body = login(owner).get(build_url(build), **htmx()).content.decode()
    assert body.lstrip().startswith('<section id="build-summary"')


def test_viewer_cannot_cancel_a_build(viewer, service, make_build, login):
    build = make_build(service, status=BuildStatus.BUILDING)
    assert login(viewer).post(build_url(build) + "cancel/").status_code == 403


def test_developer_cancels_a_queued_build(developer, service, make_build, login):
    build = make_build(service, status=BuildStatus.QUEUED)
    r = login(developer).post(build_url(build) + "cancel/", **htmx())
    assert r["HX-Redirect"] == build_url(build)
    build.refresh_from_db()
    assert build.status == BuildStatus.CANCELED


def test_canceling_a_finished_build_is_400(owner, build, login):
    r = login(owner).post(build_url(build) + "cancel/", **htmx())
    assert r.status_code == 400
    assert b"already succeeded" in r.content

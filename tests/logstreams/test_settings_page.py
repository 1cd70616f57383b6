"""The dashboard's log stream settings page (/settings/log-stream/), by persona."""

import pytest

from logstreams.models import ServiceLogStream, WorkspaceLogStream
from tests.helpers import Receiver, no_answer

HTMX = {"HX-Request": "true"}


def page(workspace, suffix=""):
    return f"/settings/log-stream/{suffix}?workspace={workspace.id}"


@pytest.fixture
def admin_client(client, owner):
    client.force_login(owner)
    return client


def test_it_shows_the_settings_and_counters(admin_client, workspace, make_service):
    WorkspaceLogStream.objects.create(
        workspace=workspace,
        endpoint="localhost:6514",
        token="do-not-show",
        dropped_lines=1234,
        last_error="<b>localhost:6514</b> refused the connection",
    )
    make_service(name="<script>alert(1)</script>")
    response = admin_client.get(page(workspace))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'value="localhost:6514"' in html
    assert '<dd id="dropped-lines">1234' in html
    assert "do-not-show" not in html
    assert "&lt;b&gt;localhost:6514&lt;/b&gt; refused" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Send test line" in html


def test_it_uses_the_last_workspace_without_a_query(admin_client, workspace):
    assert admin_client.get("/settings/log-stream/").status_code == 200


def test_it_saves_the_default_destination(admin_client, workspace):
    response = admin_client.post(
        page(workspace),
        {"endpoint": " localhost:6514 ", "token": "tok", "enabled": "on", "preview": "send"},
    )
    assert response.status_code == 302
    assert response["Location"] == page(workspace)
    stream = WorkspaceLogStream.objects.get(workspace=workspace)
    assert (stream.endpoint, stream.token, stream.enabled) == ("localhost:6514", "tok", True)

    # A blank token keeps the current one for the same endpoint; unticking pauses.
    admin_client.post(page(workspace), {"endpoint": "localhost:6514", "preview": "drop"})
    stream.refresh_from_db()
    assert (stream.endpoint, stream.token, stream.enabled, stream.preview) == (
        "localhost:6514",
        "tok",
        False,
        "drop",
    )
    admin_client.post(
        page(workspace),
        {"endpoint": "localhost:6514", "preview": "drop", "clear_token": "on"},
    )
    stream.refresh_from_db()
    assert stream.token == ""


def test_a_new_endpoint_with_a_blank_token_removes_the_old_token(admin_client, workspace):
    """Re-pointing the stream must not hand the old destination's token to a new host."""
    admin_client.post(
        page(workspace), {"endpoint": "localhost:6514", "token": "tok", "preview": "send"}
    )
    response = admin_client.post(
        page(workspace), {"endpoint": "127.0.0.2:6514", "preview": "send", "enabled": "on"}
    )
    assert response.status_code == 302
    stream = WorkspaceLogStream.objects.get(workspace=workspace)
    assert (stream.endpoint, stream.token) == ("127.0.0.2:6514", "")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"endpoint": "", "preview": "send"}, "This field is required."),
        ({"endpoint": "no-port", "preview": "send"}, "must be HOST:PORT"),
        ({"endpoint": "a.b:70000", "preview": "send"}, "port between 1 and 65535"),
        ({"endpoint": "a.b:1", "preview": "sometimes"}, "Select a valid choice"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(admin_client, workspace, data, message):
    response = admin_client.post(page(workspace), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'class="field-error"' in response.content.decode()
    assert not WorkspaceLogStream.objects.exclude(endpoint="").exists()


def test_it_removes_the_destination(admin_client, workspace):
    WorkspaceLogStream.objects.create(workspace=workspace, endpoint="localhost:6514")
    response = admin_client.post(page(workspace, "delete/"))
    assert response.status_code == 302
    assert WorkspaceLogStream.objects.get(workspace=workspace).endpoint == ""


def test_the_test_button_sends_a_line_to_a_real_receiver(
    admin_client, workspace, stream_settings, receiver
):
    WorkspaceLogStream.objects.create(workspace=workspace, endpoint=receiver.endpoint, token="t")
    response = admin_client.post(page(workspace, "test/"), headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith('<div id="test-result"')
    assert f"A test line was delivered to {receiver.endpoint}." in html
    (message,) = receiver.wait_for(1)
    assert message.params["token"] == "t"
    assert message.params["workspace"] == workspace.id


def test_the_test_button_reports_an_untrusted_certificate(
    admin_client, workspace, stream_settings, pki
):
    rogue = Receiver(pki.rogue_pem).start()
    try:
        WorkspaceLogStream.objects.create(workspace=workspace, endpoint=rogue.endpoint)
        response = admin_client.post(page(workspace, "test/"))  # without htmx: the full page
    finally:
        rogue.stop()
    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Log stream</h1>" in html
    assert no_answer("127.0.0.1") in html
    assert rogue.messages == []


def test_the_test_button_needs_a_destination(admin_client, workspace):
    response = admin_client.post(page(workspace, "test/"), headers=HTMX)
    assert "Set a destination first." in response.content.decode()


def test_a_service_can_drop_or_use_a_custom_destination(admin_client, workspace, service):
    url = page(workspace, f"services/{service.id}/")
    response = admin_client.post(url, {f"{service.id}-setting": "drop"}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith(f'<tr id="svc-{service.id}">')
    assert "<strong>dropped</strong>" in html
    assert ServiceLogStream.objects.get(service=service).setting == "drop"

    response = admin_client.post(
        url,
        {
            f"{service.id}-setting": "custom",
            f"{service.id}-endpoint": "127.0.0.3:6514",
            f"{service.id}-token": "own",
        },
    )
    assert response.status_code == 302
    override = ServiceLogStream.objects.get(service=service)
    assert (override.setting, override.endpoint, override.token) == (
        "send",
        "127.0.0.3:6514",
        "own",
    )

    admin_client.post(url, {f"{service.id}-setting": "default"})
    assert not ServiceLogStream.objects.filter(service=service).exists()


def test_a_custom_destination_needs_an_endpoint(admin_client, workspace, service):
    url = page(workspace, f"services/{service.id}/")
    response = admin_client.post(url, {f"{service.id}-setting": "custom"}, headers=HTMX)
    assert response.status_code == 400
    assert "A custom destination needs an endpoint" in response.content.decode()
    assert not ServiceLogStream.objects.exists()


def test_a_service_of_another_workspace_is_not_found(
    admin_client, workspace, make_service, other_workspace
):
    theirs = make_service(other_workspace, name="theirs")
    url = page(workspace, f"services/{theirs.id}/")
    assert admin_client.post(url, {f"{theirs.id}-setting": "drop"}).status_code == 404
    assert not ServiceLogStream.objects.exists()


@pytest.mark.parametrize("persona", ["developer", "viewer"])
def test_members_who_are_not_admins_get_a_403(client, request, workspace, persona):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(page(workspace)).status_code == 403
    response = client.post(page(workspace), {"endpoint": "a.b:1", "preview": "send"})
    assert response.status_code == 403
    assert client.post(page(workspace, "test/")).status_code == 403
    assert not WorkspaceLogStream.objects.exclude(endpoint="").exists()


def test_an_outsider_gets_a_404(client, outsider, workspace):
    client.force_login(outsider)
    assert client.get(page(workspace)).status_code == 404
    assert client.post(page(workspace), {"endpoint": "a.b:1", "preview": "send"}).status_code == 404
    assert client.post(page(workspace, "delete/")).status_code == 404


def test_anonymous_is_sent_to_sign_in(client, workspace):
    response = client.get(page(workspace))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_wrong_methods_are_refused(admin_client, workspace):
    assert admin_client.put(page(workspace)).status_code == 405
    assert admin_client.get(page(workspace, "test/")).status_code == 405
    assert admin_client.get(page(workspace, "delete/")).status_code == 405


def test_the_nav_links_here_for_admins(admin_client, workspace):
    html = admin_client.get(f"/workspaces/{workspace.id}/").content.decode()
    assert f'href="/settings/log-stream/?workspace={workspace.id}"' in html

"""The webhooks pages by persona: admins create, edit, delete and re-send; everyone in the
workspace reads (without the secret); outsiders get 404s; bad input is a 400 on its field;
names and receivers' answers are escaped."""

import pytest
from django.utils import timezone

from tests.helpers import htmx
from webhooks.models import Attempt, Delivery, DeliveryState, Event, Webhook

pytestmark = pytest.mark.django_db

URL = "https://127.0.0.1:9443/hook"


def form(**extra):
    return {"name": "ops", "url": URL, "enabled": "on", "event_filter": ["job_run_ended"], **extra}


@pytest.fixture
def hook(workspace):
    return Webhook.objects.create(workspace=workspace, name="ops", url=URL)


@pytest.fixture
def sent(hook, workspace):
    """An event sent once, answered with a hostile body."""
    event = Event.objects.create(workspace=workspace, type="job_run_ended", service_id="srv-x")
    delivery = Delivery.objects.create(
        webhook=hook, event=event, state=DeliveryState.FAILED, attempts=1
    )
    now = timezone.now()
    Attempt.objects.create(
        delivery=delivery,
        webhook=hook,
        number=1,
        sent_at=now,
        created_at=now,
        status_code=500,
        response_body="<script>alert('body')</script>",
    )
    return event


def test_it_lists_and_an_admin_creates(login, owner, workspace):
    client = login(owner)
    page = client.get(f"/workspaces/{workspace.id}/webhooks/")
    assert page.status_code == 200
    assert b"No webhooks yet" in page.content
    assert b"Create webhook" in page.content
    assert b'href="/workspaces/' + workspace.id.encode() + b'/webhooks/"' in page.content  # nav

    created = client.post(f"/workspaces/{workspace.id}/webhooks/", form())
    hook = Webhook.objects.get()
    assert created.status_code == 302
    assert created["Location"] == f"/workspaces/{workspace.id}/webhooks/{hook.id}/"
    assert hook.event_filter == ["job_run_ended"]
    assert hook.enabled
    detail = client.get(created["Location"])
    assert hook.secret.encode() in detail.content
    assert b"Nothing sent yet" in detail.content


def test_an_admin_edits_and_deletes(login, owner, workspace, hook):
    client = login(owner)
    path = f"/workspaces/{workspace.id}/webhooks/{hook.id}/"
    saved = client.post(path, form(name="renamed", event_filter=[], enabled=""))
    assert saved.status_code == 302
    hook.refresh_from_db()
    assert hook.name == "renamed"
    assert hook.event_filter == []
    assert not hook.enabled
    assert client.post(f"{path}delete/").status_code == 302
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"url": "http://example.com/"}, b"must be an https:// URL"),
        ({"url": "https://10.0.0.1/hook"}, b"cannot connect to 10.0.0.1"),
        ({"name": ""}, b"This field is required."),
        ({"event_filter": ["server_failed"]}, b"Select a valid choice."),
    ],
)
def test_bad_input_is_a_400_on_its_field(login, owner, workspace, data, message, settings):
    settings.EGRESS_ALLOW = ["127.0.0.1"]
    response = login(owner).post(f"/workspaces/{workspace.id}/webhooks/", form(**data))
    assert response.status_code == 400
    assert message in response.content
    assert not Webhook.objects.exists()


def test_viewers_read_without_the_secret_and_cannot_write(
    login, viewer, developer, workspace, hook, sent
):
    for user in (viewer, developer):
        client = login(user)
        listing = client.get(f"/workspaces/{workspace.id}/webhooks/")
        assert listing.status_code == 200
        assert b"Create webhook" not in listing.content
        path = f"/workspaces/{workspace.id}/webhooks/{hook.id}/"
        detail = client.get(path)
        assert detail.status_code == 200
        assert hook.secret.encode() not in detail.content
        assert b"whsec_" not in detail.content
        assert b"Re-send" not in detail.content
        assert client.post(f"/workspaces/{workspace.id}/webhooks/", form()).status_code == 403
        assert client.post(path, form(name="x")).status_code == 403
        assert client.post(f"{path}delete/").status_code == 403
        assert client.post(f"{path}events/{sent.id}/resend/").status_code == 403
    hook.refresh_from_db()
    assert hook.name == "ops"
    assert Delivery.objects.get().state == DeliveryState.FAILED


def test_viewers_see_only_the_urls_scheme_and_host(login, owner, viewer, developer, workspace):
    """A bearer URL (a token in its path or query) is an admin's secret, like the signing one."""
    hook = Webhook.objects.create(
        workspace=workspace, name="slack", url="https://127.0.0.1:8443/T0/B0/xoxbTOKEN?k=QTOKEN"
    )
    pages = (
        f"/workspaces/{workspace.id}/webhooks/",
        f"/workspaces/{workspace.id}/webhooks/{hook.id}/",
    )
    for user in (viewer, developer):
        client = login(user)
        for path in pages:
            page = client.get(path)
            assert page.status_code == 200
            assert b"TOKEN" not in page.content
            assert "https://127.0.0.1:8443/…".encode() in page.content
    client = login(owner)
    for path in pages:
        assert b"xoxbTOKEN?k=QTOKEN" in client.get(path).content


def test_another_workspaces_admin_gets_404(login, outsider, workspace, hook, sent):
    client = login(outsider)
    path = f"/workspaces/{workspace.id}/webhooks/{hook.id}/"
    assert client.get(f"/workspaces/{workspace.id}/webhooks/").status_code == 404
    assert client.get(path).status_code == 404
    assert client.post(path, form(name="mine")).status_code == 404
    assert client.post(f"{path}delete/").status_code == 404
    assert client.post(f"{path}events/{sent.id}/resend/").status_code == 404
    # Nor through their own workspace's URL.
    other = outsider.memberships.get().workspace_id
    assert client.get(f"/workspaces/{other}/webhooks/{hook.id}/").status_code == 404
    assert client.post(f"/workspaces/{other}/webhooks/{hook.id}/delete/").status_code == 404
    assert Webhook.objects.filter(pk=hook.pk).exists()


def test_deliveries_show_the_answer_escaped_and_resend(login, owner, workspace, hook, sent):
    Webhook.objects.filter(pk=hook.pk).update(name="<img src=x onerror=alert(1)>")
    client = login(owner)
    path = f"/workspaces/{workspace.id}/webhooks/{hook.id}/"
    page = client.get(path).content
    assert b"<script>alert" not in page
    assert b"&lt;script&gt;alert(&#x27;body&#x27;)&lt;/script&gt;" in page
    assert b"<img src=x" not in page
    assert b"&lt;img src=x onerror=alert(1)&gt;" in page
    assert b">500<" in page
    assert client.get(f"/workspaces/{workspace.id}/webhooks/").content.count(b"<img src=x") == 0

    partial = client.post(f"{path}events/{sent.id}/resend/", **htmx("deliveries"))
    assert partial.status_code == 200
    assert partial.content.lstrip().startswith(b'<section class="card" id="deliveries"')
    assert b"will be sent again" in partial.content
    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.PENDING
    assert delivery.round_attempts == 0
    assert client.post(f"{path}events/evt-nope/resend/").status_code == 404

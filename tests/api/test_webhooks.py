"""The webhooks API by persona: Render's paths and shapes, admins only for changes, the secret
for admins only, another workspace's webhooks a 404, a bad field a 400 naming it, and URLs
checked by the egress rules."""

import pytest

from tests.helpers import assert_error
from webhooks.models import Attempt, Delivery, Event, Webhook

pytestmark = pytest.mark.django_db

URL = "https://127.0.0.1:8443/hook"


def body(workspace, **extra):
    return {
        "ownerId": workspace.id,
        "url": URL,
        "name": "ci",
        "enabled": True,
        "eventFilter": ["job_run_ended"],
        **extra,
    }


def test_it_creates_lists_retrieves_updates_and_deletes(owner_api, workspace):
    created = owner_api.post("/v1/webhooks", body(workspace))
    assert created.status_code == 201, created.content
    hook = created.json()
    assert hook["id"].startswith("whk-")
    assert hook["secret"].startswith("whsec_")
    assert hook["eventFilter"] == ["job_run_ended"]
    assert hook["url"] == URL
    assert hook["enabled"] is True
    assert hook["ownerId"] == workspace.id
    stored = Webhook.objects.get(pk=hook["id"])
    assert stored.secret == hook["secret"]

    listed = owner_api.get("/v1/webhooks", {"ownerId": workspace.id}).json()
    assert [item["webhook"]["id"] for item in listed] == [hook["id"]]
    assert listed[0]["cursor"]
    assert owner_api.get("/v1/webhooks", {"ownerId": "tea-other"}).json() == []

    got = owner_api.get(f"/v1/webhooks/{hook['id']}").json()
    assert got == hook

    patched = owner_api.patch(
        f"/v1/webhooks/{hook['id']}", {"name": "renamed", "eventFilter": [], "enabled": False}
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["name"] == "renamed"
    assert patched.json()["eventFilter"] == []
    assert patched.json()["enabled"] is False
    assert patched.json()["url"] == URL  # left out, kept

    assert owner_api.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert_error(owner_api.get(f"/v1/webhooks/{hook['id']}"), 404)


def test_it_pages_with_cursors(owner_api, workspace):
    ids = [
        owner_api.post("/v1/webhooks", body(workspace, name=f"h{i}")).json()["id"] for i in range(3)
    ]
    first = owner_api.get("/v1/webhooks", {"limit": 2}).json()
    second = owner_api.get("/v1/webhooks", {"limit": 2, "cursor": first[-1]["cursor"]}).json()
    assert [i["webhook"]["id"] for i in first + second] == ids[::-1]
    assert_error(owner_api.get("/v1/webhooks", {"cursor": "nope"}), 400, field="cursor")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "http://example.com/hook"}, "url"),
        ({"url": "https://user:pw@example.com/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"name": ""}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"eventFilter": ["server_failed"]}, "eventFilter[0]"),
        ({"eventFilter": "job_run_ended"}, "eventFilter"),
        ({"enabled": "yes"}, "enabled"),
        ({"ownerId": "tea-someoneelse"}, "ownerId"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_bad_field_is_a_400_naming_it(owner_api, workspace, change, field):
    assert_error(owner_api.post("/v1/webhooks", body(workspace, **change)), 400, field=field)
    assert not Webhook.objects.exists()


def test_a_bad_patch_is_a_400_naming_it(owner_api, workspace):
    hook = owner_api.post("/v1/webhooks", body(workspace)).json()
    assert_error(owner_api.patch(f"/v1/webhooks/{hook['id']}", {"url": None}), 400, field="url")
    assert_error(
        owner_api.patch(f"/v1/webhooks/{hook['id']}", {"url": "ftp://x"}), 400, field="url"
    )


def test_a_private_address_is_refused_unless_allowed(owner_api, workspace, settings):
    settings.EGRESS_ALLOW = []
    for url in (
        "https://127.0.0.1/hook",
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest",
        "https://[::1]:8443/",
        "https://localhost/hook",
    ):
        refused = assert_error(owner_api.post("/v1/webhooks", body(workspace, url=url)), 400)
        assert refused["message"].startswith("url: cannot connect to"), refused
    settings.EGRESS_ALLOW = ["127.0.0.1:8443"]
    assert owner_api.post("/v1/webhooks", body(workspace)).status_code == 201
    hook = Webhook.objects.get()
    settings.EGRESS_ALLOW = []
    moved = owner_api.patch(f"/v1/webhooks/{hook.id}", {"url": "https://10.1.2.3/x"})
    assert_error(moved, 400, field="url")


def test_viewers_and_developers_read_without_the_secret_and_cannot_write(
    owner_api, viewer_api, developer_api, readonly_api, workspace
):
    hook = owner_api.post("/v1/webhooks", body(workspace)).json()
    for client in (viewer_api, developer_api, readonly_api):
        got = client.get(f"/v1/webhooks/{hook['id']}").json()
        assert got["secret"] == ""
        assert client.get("/v1/webhooks").json()[0]["webhook"]["secret"] == ""
        assert_error(client.post("/v1/webhooks", body(workspace)), 403)
        assert_error(client.patch(f"/v1/webhooks/{hook['id']}", {"name": "x"}), 403)
        assert_error(client.delete(f"/v1/webhooks/{hook['id']}"), 403)
        assert_error(client.post(f"/v1/webhooks/{hook['id']}/events/evt-x/resend"), 403)
        assert client.get(f"/v1/webhooks/{hook['id']}/events").status_code == 200
    assert Webhook.objects.get().name == "ci"


def test_viewers_and_developers_see_only_the_urls_scheme_and_host(
    owner_api, viewer_api, developer_api, readonly_api, workspace
):
    """A webhook's URL often carries a token in its path or query (Slack's, Discord's, Zapier's
    are bearer URLs); only an admin may read it whole."""
    secret_url = "https://127.0.0.1:8443/services/T000/B000/xoxbTOKEN?sig=QUERYTOKEN"
    hook = owner_api.post("/v1/webhooks", body(workspace, url=secret_url)).json()
    assert hook["url"] == secret_url
    assert owner_api.get(f"/v1/webhooks/{hook['id']}").json()["url"] == secret_url
    for client in (viewer_api, developer_api, readonly_api):
        got = client.get(f"/v1/webhooks/{hook['id']}")
        listed = client.get("/v1/webhooks")
        for response in (got, listed):
            assert b"TOKEN" not in response.content
        assert got.json()["url"] == "https://127.0.0.1:8443/…"
        assert listed.json()[0]["webhook"]["url"] == "https://127.0.0.1:8443/…"


def test_another_workspaces_admin_gets_404_everywhere(owner_api, outsider_api, workspace):
    hook = owner_api.post("/v1/webhooks", body(workspace)).json()
    path = f"/v1/webhooks/{hook['id']}"
    assert outsider_api.get("/v1/webhooks").json() == []
    assert_error(outsider_api.get(path), 404)
    assert_error(outsider_api.patch(path, {"name": "mine"}), 404)
    assert_error(outsider_api.delete(path), 404)
    assert_error(outsider_api.get(f"{path}/events"), 404)
    assert_error(outsider_api.post(f"{path}/events/evt-x/resend"), 404)
    assert Webhook.objects.get().name == "ci"


def test_events_list_every_attempt_in_renders_shape(owner_api, workspace):
    hook = owner_api.post("/v1/webhooks", body(workspace)).json()
    webhook = Webhook.objects.get(pk=hook["id"])
    event = Event.objects.create(workspace=workspace, type="job_run_ended", service_id="srv-x")
    delivery = Delivery.objects.create(webhook=webhook, event=event)
    from django.utils import timezone

    for number, (code, error) in enumerate([(None, "no answer within 10 s"), (200, "")], 1):
        now = timezone.now()
        Attempt.objects.create(
            delivery=delivery,
            webhook=webhook,
            number=number,
            sent_at=now,
            created_at=now,
            status_code=code,
            response_body="ok" if code else "",
            error=error,
        )
    items = owner_api.get(f"/v1/webhooks/{hook['id']}/events").json()
    assert [i["webhookEvent"]["attempt"] for i in items] == [2, 1]
    newest, oldest = (i["webhookEvent"] for i in items)
    assert newest["statusCode"] == 200
    assert newest["responseBody"] == "ok"
    assert "error" not in newest
    assert oldest["error"] == "no answer within 10 s"
    assert "statusCode" not in oldest
    assert newest["eventId"] == oldest["eventId"] == event.id
    assert newest["eventType"] == "job_run_ended"
    page = owner_api.get(
        f"/v1/webhooks/{hook['id']}/events", {"limit": 1, "cursor": items[0]["cursor"]}
    ).json()
    assert [i["webhookEvent"]["attempt"] for i in page] == [1]

    first_sent = Attempt.objects.get(number=1).sent_at.isoformat()
    after = owner_api.get(f"/v1/webhooks/{hook['id']}/events", {"sentAfter": first_sent}).json()
    before = owner_api.get(f"/v1/webhooks/{hook['id']}/events", {"sentBefore": first_sent}).json()
    assert [i["webhookEvent"]["attempt"] for i in after] == [2, 1]
    assert before == []
    assert_error(
        owner_api.get(f"/v1/webhooks/{hook['id']}/events", {"sentAfter": "yesterday"}),
        400,
        field="sentAfter",
    )

    assert owner_api.post(f"/v1/webhooks/{hook['id']}/events/{event.id}/resend").status_code == 202
    assert_error(owner_api.post(f"/v1/webhooks/{hook['id']}/events/evt-nope/resend"), 404)


def test_a_workspace_has_a_bounded_number_of_webhooks(owner_api, workspace, settings):
    settings.WEBHOOKS_PER_WORKSPACE = 2
    for i in range(2):
        assert owner_api.post("/v1/webhooks", body(workspace, name=f"h{i}")).status_code == 201
    refused = assert_error(owner_api.post("/v1/webhooks", body(workspace)), 400)
    assert "at most 2 webhooks" in refused["message"]

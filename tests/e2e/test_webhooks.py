"""The webhooks pages in Chromium, with real deliveries: an admin creates a webhook from the
page, a real Celery worker delivers an event to a real HTTPS receiver (which verifies the
signature), the delivery shows up with its status and the receiver's (hostile) answer escaped,
and the Re-send button sends it again with the same ``webhook-id`` without a page load."""

import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from services.models import Service
from services.transitions import transition
from tests.helpers import make_pki, screenshot, sign_in, wait_for
from tests.plugins.webhooks import HttpsReceiver
from webhooks.models import Delivery, Webhook

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.docker,
]

PKI = make_pki(Path(tempfile.mkdtemp(prefix="oneoff-pki-")))
WORKER_ENV = {"WEBHOOK_CA_FILE": PKI.ca_file, "WEBHOOK_RETRY_SCHEDULE": "2,2,2"}
HOSTILE = "<img src=x onerror=window.pwned=1>"


@pytest.fixture
def receiver():
    server = HttpsReceiver(PKI.server_pem, answer=b"<script>window.pwned=2</script> thanks").start()
    yield server
    server.stop()
    assert not server.errors, server.errors


def test_an_admin_creates_a_webhook_sees_its_delivery_and_resends_it(
    page, live_server, live_worker, owner, workspace, service, receiver
):
    sign_in(page, live_server, "alice@acme.test")
    page.get_by_role("link", name="Webhooks").click()
    expect(page).to_have_url(re.compile(rf"/workspaces/{workspace.id}/webhooks/$"))
    expect(page.get_by_text("No webhooks yet")).to_be_visible()

    page.get_by_label("Name").fill(HOSTILE)
    page.get_by_label("URL").fill("https://10.0.0.1/hook")  # private: refused
    page.get_by_label("service_suspended").check()
    page.get_by_role("button", name="Create webhook").click()
    expect(page.get_by_text("cannot connect to 10.0.0.1")).to_be_visible()
    assert not Webhook.objects.exists()

    page.get_by_label("URL").fill(receiver.url)
    page.get_by_role("button", name="Create webhook").click()
    hook = Webhook.objects.get()
    expect(page).to_have_url(re.compile(rf"/webhooks/{hook.id}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(HOSTILE)  # shown as text
    expect(page.get_by_role("textbox", name="Signing secret")).to_have_value(hook.secret)
    receiver.secret = hook.secret
    assert hook.event_filter == ["service_suspended"]

    transition(Service.objects.filter(pk=service.pk, suspended=False), suspended=True)
    (first,) = receiver.wait_for(1)
    assert first.verified
    wait_for(lambda: Delivery.objects.get().attempts == 1, 10, 0.05, "the attempt recorded")
    page.reload()
    row = page.locator("#deliveries tbody tr").first
    expect(row).to_contain_text("service_suspended")
    expect(row).to_contain_text("delivered")
    expect(row.locator(".status-code")).to_have_text("200")
    expect(row.locator("pre.response-body")).to_have_text("<script>window.pwned=2</script> thanks")

    page.evaluate("window.notReloaded = true")
    row.get_by_role("button", name="Re-send").click()
    expect(page.get_by_role("status")).to_contain_text("will be sent again")
    assert page.evaluate("window.notReloaded") is True
    again = receiver.wait_for(2)[-1]
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.verified
    wait_for(lambda: Delivery.objects.get().attempts == 2, 10, 0.05, "the attempt recorded")
    page.reload()
    expect(page.locator("#deliveries tbody tr").first.locator("td").nth(1)).to_have_text("2")
    assert page.evaluate("window.pwned") is None
    screenshot(page, "webhook")

    page.get_by_role("link", name="Webhooks").first.click()
    expect(page.locator(f"#hook-{hook.id}")).to_contain_text(HOSTILE)
    assert page.evaluate("window.pwned") is None

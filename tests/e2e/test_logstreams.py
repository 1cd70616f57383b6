"""The log stream settings page in Chromium: set a destination, send a test line to a real TLS
receiver without a page load, drop a service's logs."""

import re

import pytest
from playwright.sync_api import expect

from logstreams.models import ServiceLogStream, WorkspaceLogStream
from tests.helpers import screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_an_admin_sets_the_stream_and_sends_a_test_line(
    page,
    live_server,
    owner,
    workspace,
    service,
    stream_settings,
    receiver,
):
    sign_in(page, live_server, "alice@acme.test")
    page.get_by_role("link", name="Log stream").click()
    expect(page).to_have_url(re.compile(rf"/settings/log-stream/\?workspace={workspace.id}$"))
    expect(page.get_by_role("button", name="Send test line")).to_have_count(0)

    page.get_by_label("Endpoint", exact=True).fill(receiver.endpoint)
    page.get_by_label("Token", exact=True).fill("tok-browser")
    page.get_by_role("button", name="Save").first.click()
    expect(page.get_by_text("forwarding", exact=True)).to_be_visible()
    assert WorkspaceLogStream.objects.get(workspace=workspace).token == "tok-browser"

    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Send test line").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"A test line was delivered to {receiver.endpoint}."
    )
    assert page.evaluate("window.notReloaded") is True  # htmx swapped the result in place
    (message,) = receiver.wait_for(1)
    assert message.params["token"] == "tok-browser"

    row = page.locator(f"#svc-{service.id}")
    row.get_by_label(f"Logs of {service.name}").select_option("drop")
    row.get_by_role("button", name="Save").click()
    expect(page.locator(f"#svc-{service.id}")).to_contain_text("dropped")
    assert page.evaluate("window.notReloaded") is True
    assert ServiceLogStream.objects.get(service=service).setting == "drop"
    screenshot(page, "log-stream-settings")

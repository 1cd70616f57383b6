"""The new-key page in a browser: the once-shown key has a copy button, and a reload neither
resubmits the form nor shows the key again (post/redirect/get)."""

import re

import pytest
from playwright.sync_api import expect

from services.models import ApiKey
from tests.helpers import screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_the_new_key_copies_and_a_reload_neither_resubmits_nor_shows_it(
    page, live_server, owner, workspace
):
    keys = f"/workspaces/{workspace.id}/api-keys/"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    sign_in(page, live_server, "alice@acme.test", keys)
    posts.clear()  # the sign-in's own
    page.get_by_label("Name").fill("deploy")
    page.get_by_role("button", name="Create key").click()
    shown = page.get_by_label("New API key")
    expect(shown).to_have_value(re.compile("^oneoff_"))
    secret = shown.input_value()
    assert ApiKey.authenticate(secret) == ApiKey.objects.get(name="deploy")
    expect(page).to_have_url(f"{live_server.url}{keys}")  # the GET after the redirect

    # The copy button copies the key itself.
    copy = page.get_by_role("button", name="Copy API key")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot(page, "api-key-copy")

    # A reload is a GET: no second key, and the key is not shown again.
    page.reload()
    expect(page.get_by_role("heading", name="Keys in this workspace")).to_be_visible()
    expect(page.get_by_label("New API key")).to_have_count(0)
    assert secret not in page.content()
    assert ApiKey.objects.filter(name="deploy").count() == 1
    assert posts == [f"{live_server.url}{keys}"], posts
    # Back to the page as it was shown: not from the cache (no-store), so no key either.
    page.go_back()
    page.go_forward()
    expect(page.get_by_label("New API key")).to_have_count(0)
    assert ApiKey.objects.count() == 1

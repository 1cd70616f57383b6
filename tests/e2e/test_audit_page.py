"""The audit log page in Chromium: a real sign-in is on it, a hostile name stays text, the
filters go in the URL, and a viewer has no link to it."""

import re

import pytest
from playwright.sync_api import expect

from audit.trail import Actor, record
from tests.helpers import make_member, screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_an_admin_reads_and_filters_the_audit_log(page, live_server, owner, workspace, service):
    hostile = make_member(workspace, "<img src=x onerror=alert(1)>@evil.test", "developer")
    record(
        Actor(user=hostile, address="203.0.113.9"),
        workspace,
        "job.create",
        target_type="job",
        target_id="job-<script>alert(2)</script>",
    )
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, live_server, "alice@acme.test")
    page.get_by_role("link", name="Audit log").click()
    expect(page).to_have_url(re.compile(f"/workspaces/{workspace.id}/audit/$"))
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("signin")  # this very sign-in, newest first
    expect(rows.nth(0)).to_contain_text("alice@acme.test")
    expect(rows.nth(1)).to_contain_text("<img src=x onerror=alert(1)>@evil.test")
    expect(rows.nth(1)).to_contain_text("job-<script>alert(2)</script>")
    screenshot(page, "audit-log")

    page.get_by_label("Action").select_option("job.create")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"action=job\.create"))
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("job.create")
    assert dialogs == []


def test_a_viewer_has_no_link(page, live_server, viewer, workspace):
    sign_in(page, live_server, "vera@acme.test")
    expect(page.get_by_role("link", name="Services")).to_be_visible()
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    response = page.goto(f"{live_server.url}/workspaces/{workspace.id}/audit/")
    assert response is not None
    assert response.status == 403

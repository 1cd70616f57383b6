"""Who may read the audit trail: a workspace's admins only. A viewer or a developer gets a 403
(and no link to the page); another workspace's admin a 404 and none of these entries; hostile
names are shown as text."""

import pytest

from audit.models import AuditEntry
from audit.trail import Actor, record
from tests.helpers import assert_error, make_member


@pytest.fixture
def entries(workspace, owner, service):
    actor = Actor(user=owner, address="203.0.113.7")
    return [
        record(actor, workspace, "service.suspend", target_type="service", target_id=service.id),
        record(
            actor,
            workspace,
            "env_var.set",
            target_type="service",
            target_id=service.id,
            metadata={"key": "DEBUG"},
        ),
    ]


def test_it_lists_the_workspaces_entries_for_an_admin(api_as, owner, workspace, entries):
    response = api_as(owner, workspace).get(f"/v1/owners/{workspace.id}/audit-logs")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [item["auditLog"]["id"] for item in body] == [e.id for e in reversed(entries)]
    first = body[0]["auditLog"]
    assert first["event"] == "UpdateEnvVarsEvent"
    assert first["action"] == "env_var.set"
    assert first["status"] == "success"
    assert first["actor"] == {"type": "user", "email": "alice@acme.test", "name": "alice@acme.test"}
    assert first["metadata"]["key"] == "DEBUG"
    assert first["metadata"]["address"] == "203.0.113.7"


def test_a_read_only_admin_key_may_read_it(api_as, owner, workspace, entries):
    response = api_as(owner, workspace, read_only=True).get(f"/v1/owners/{workspace.id}/audit-logs")
    assert response.status_code == 200


@pytest.mark.parametrize("persona", ["viewer", "developer"])
def test_a_viewer_or_developer_gets_403(request, persona, api_as, workspace, entries):
    user = request.getfixturevalue(persona)
    response = api_as(user, workspace).get(f"/v1/owners/{workspace.id}/audit-logs")
    assert_error(response, 403, id="forbidden")


def test_another_workspaces_admin_gets_404_and_none_of_its_entries(
    api_as, outsider, other_workspace, workspace, entries
):
    api = api_as(outsider, other_workspace)
    assert_error(api.get(f"/v1/owners/{workspace.id}/audit-logs"), 404, id="not_found")
    own = api.get(f"/v1/owners/{other_workspace.id}/audit-logs")
    assert own.status_code == 200
    assert own.json() == []


def test_a_viewer_of_both_workspaces_gets_404_for_the_other(api_as, viewer, other_workspace):
    # A viewer's key of workspace A asking for workspace B: 404 before the role is looked at.
    api = api_as(viewer, viewer.memberships.get().workspace)
    assert_error(api.get(f"/v1/owners/{other_workspace.id}/audit-logs"), 404)


def test_bad_parameters_are_400s_naming_the_field(api_as, owner, workspace, entries):
    api = api_as(owner, workspace)
    url = f"/v1/owners/{workspace.id}/audit-logs"
    assert_error(api.get(url, {"cursor": "garbage"}), 400, field="cursor")
    assert_error(api.get(url, {"limit": 0}), 400, field="limit")
    assert_error(api.get(url, {"direction": "sideways"}), 400, field="direction")
    assert_error(api.get(url, {"startTime": "yesterday"}), 400, field="startTime")


def test_the_page_is_for_admins(page_as, owner, workspace, entries):
    response = page_as(owner).get(f"/workspaces/{workspace.id}/audit/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "env_var.set" in html
    assert "service.suspend" in html
    assert f'href="/workspaces/{workspace.id}/audit/"' in html
    assert "203.0.113.7" in html


@pytest.mark.parametrize("persona", ["viewer", "developer"])
def test_a_viewer_gets_403_and_no_link(request, persona, page_as, workspace, entries):
    client = page_as(request.getfixturevalue(persona))
    assert client.get(f"/workspaces/{workspace.id}/audit/").status_code == 403
    services = client.get(f"/workspaces/{workspace.id}/")
    assert services.status_code == 200
    assert "/audit/" not in services.content.decode()


def test_another_workspaces_admin_gets_404_on_the_page(page_as, outsider, workspace, entries):
    assert page_as(outsider).get(f"/workspaces/{workspace.id}/audit/").status_code == 404


def _shown(client, url, params) -> list[str]:
    response = client.get(url, params)
    assert response.status_code == 200, response.content
    return [entry.id for entry in response.context["entries"]]


def test_the_page_filters(page_as, owner, workspace, service, entries):
    client = page_as(owner)
    url = f"/workspaces/{workspace.id}/audit/"
    suspend, env_set = entries
    assert _shown(client, url, {}) == [env_set.id, suspend.id]
    assert _shown(client, url, {"action": "env_var.set"}) == [env_set.id]
    assert _shown(client, url, {"action": "service"}) == [suspend.id]  # a family
    assert _shown(client, url, {"actor": "nobody@acme.test"}) == []
    assert _shown(client, url, {"actor": "ALICE@acme.test"}) == [env_set.id, suspend.id]
    assert _shown(client, url, {"target": "srv-other"}) == []
    assert _shown(client, url, {"target": service.id}) == [env_set.id, suspend.id]
    assert _shown(client, url, {"since": "2999-01-01"}) == []
    assert _shown(client, url, {"until": "2999-01-01"}) == [env_set.id, suspend.id]
    assert _shown(client, url, {"until": "2000-01-01"}) == []
    assert client.get(url, {"since": "not a date"}).status_code == 400
    assert client.get(url, {"action": "nope"}).status_code == 400
    assert client.get(url, {"cursor": "aud-" + "0" * 20}).status_code == 400


def test_the_page_pages_by_cursor(page_as, owner, workspace, service, monkeypatch):
    monkeypatch.setattr("dashboard.forms.audit.PAGE_SIZE", 2)
    actor = Actor(user=owner)
    made = [record(actor, workspace, "service.suspend", target_id=f"srv-{i}") for i in range(5)]
    client = page_as(owner)
    url = f"/workspaces/{workspace.id}/audit/"
    seen = []
    params: dict = {"action": "service.suspend"}
    for _ in range(3):
        response = client.get(url, params)
        html = response.content.decode()
        page = [e.id for e in response.context["entries"]]
        assert all(f'id="entry-{e}"' in html for e in page)
        seen += page
        cursor = response.context["next_cursor"]
        if cursor is None:
            break
        assert "action=service.suspend&amp;cursor=" in html  # filters kept on the next page
        params = {"action": "service.suspend", "cursor": cursor}
    assert seen == [e.id for e in reversed(made)]


def test_hostile_names_are_shown_as_text(page_as, owner, workspace):
    hostile = make_member(workspace, '"><script>alert(1)</script>@x.test', "developer")
    record(
        Actor(user=hostile),
        workspace,
        "job.create",
        target_id="<img src=x onerror=alert(2)>",
        metadata={"<b>key</b>": "<script>alert(3)</script>"},
    )
    html = page_as(owner).get(f"/workspaces/{workspace.id}/audit/").content.decode()
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<b>key</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html
    assert AuditEntry.objects.count() == 1

"""Each audited action, through the real API and the real dashboard (PostgreSQL): exactly one
entry, with the right action, target, actor, key prefix and client address; and no env var
value anywhere in any entry."""

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEntry, AuditStatus
from jobs.launch import create_job
from logstreams.models import WorkspaceLogStream
from services.models import ApiKey, EnvVar, Service
from tests.audit.conftest import API_ADDRESS, PAGE_ADDRESS
from webhooks.models import Webhook

SECRET = "s3cr3t-VALUE-that-must-never-be-audited-7f3a9c"
WEBHOOK_URL = "https://127.0.0.1:8443/hook"


@dataclass
class World:
    workspace: Any
    owner: Any
    service: Service
    job: Any = None
    webhook: Webhook | None = None
    key: ApiKey | None = None
    extra: dict = field(default_factory=dict)


@pytest.fixture
def world(workspace, owner, service, make_build):
    make_build(service)
    EnvVar.objects.create(service=service, key="DEBUG", value="0")
    job = create_job(service, "sleep 60")  # no actor: the system's, not audited
    webhook = Webhook.objects.create(workspace=workspace, name="ops", url=WEBHOOK_URL)
    WorkspaceLogStream.objects.create(workspace=workspace, endpoint="127.0.0.1:6514")
    key, _ = ApiKey.issue(owner, workspace, name="ci")
    return World(workspace, owner, service, job=job, webhook=webhook, key=key)


def _id(response) -> str:
    return response.json()["id"]


# action -> (request through the API, the expected target id given the world and response)
API_CASES = {
    "job.create": (
        lambda api, w: api.post(f"/v1/services/{w.service.id}/jobs", {"startCommand": "true"}),
        lambda w, r: _id(r),
    ),
    "job.cancel": (
        lambda api, w: api.post(f"/v1/services/{w.service.id}/jobs/{w.job.id}/cancel"),
        lambda w, r: w.job.id,
    ),
    "env_var.set": (
        lambda api, w: api.put(f"/v1/services/{w.service.id}/env-vars/TOKEN", {"value": SECRET}),
        lambda w, r: w.service.id,
    ),
    "env_vars.replace": (
        lambda api, w: api.put(
            f"/v1/services/{w.service.id}/env-vars", [{"key": "TOKEN", "value": SECRET}]
        ),
        lambda w, r: w.service.id,
    ),
    "env_var.delete": (
        lambda api, w: api.delete(f"/v1/services/{w.service.id}/env-vars/DEBUG"),
        lambda w, r: w.service.id,
    ),
    "service.create": (
        lambda api, w: api.post(
            "/v1/services",
            {
                "type": "web_service",
                "name": "fresh",
                "ownerId": w.workspace.id,
                "image": {"imagePath": "oneoff/busybox:latest"},
                "envVars": [{"key": "TOKEN", "value": SECRET}],
            },
        ),
        lambda w, r: r.json()["service"]["id"],
    ),
    "service.update": (
        lambda api, w: api.patch(f"/v1/services/{w.service.id}", {"name": "renamed"}),
        lambda w, r: w.service.id,
    ),
    "service.suspend": (
        lambda api, w: api.post(f"/v1/services/{w.service.id}/suspend"),
        lambda w, r: w.service.id,
    ),
    "service.resume": (
        lambda api, w: (
            Service.objects.filter(pk=w.service.pk).update(suspended=True),
            api.post(f"/v1/services/{w.service.id}/resume"),
        )[1],
        lambda w, r: w.service.id,
    ),
    "build.trigger": (
        lambda api, w: api.post(f"/v1/services/{w.service.id}/builds"),
        lambda w, r: _id(r),
    ),
    "log_stream.create": (
        lambda api, w: (
            WorkspaceLogStream.objects.all().delete(),
            api.put(
                f"/v1/logs/streams/owner/{w.workspace.id}",
                {"preview": "send", "endpoint": "127.0.0.1:6514", "token": SECRET},
            ),
        )[1],
        lambda w, r: w.workspace.id,
    ),
    "log_stream.update": (
        lambda api, w: api.put(
            f"/v1/logs/streams/owner/{w.workspace.id}", {"preview": "drop", "token": SECRET}
        ),
        lambda w, r: w.workspace.id,
    ),
    "log_stream.delete": (
        lambda api, w: api.delete(f"/v1/logs/streams/owner/{w.workspace.id}"),
        lambda w, r: w.workspace.id,
    ),
    "webhook.create": (
        lambda api, w: api.post(
            "/v1/webhooks",
            {
                "ownerId": w.workspace.id,
                "url": WEBHOOK_URL,
                "name": "new",
                "enabled": True,
                "eventFilter": [],
            },
        ),
        lambda w, r: _id(r),
    ),
    "webhook.update": (
        lambda api, w: api.patch(f"/v1/webhooks/{w.webhook.id}", {"name": "renamed"}),
        lambda w, r: w.webhook.id,
    ),
    "webhook.delete": (
        lambda api, w: api.delete(f"/v1/webhooks/{w.webhook.id}"),
        lambda w, r: w.webhook.id,
    ),
}


def _new_entries(before: set[str]) -> list[AuditEntry]:
    return list(AuditEntry.objects.exclude(pk__in=before))


def _assert_no_secret() -> None:
    for entry in AuditEntry.objects.all():
        text = json.dumps(
            [entry.actor_name, entry.actor_email, entry.target_id, entry.metadata, entry.address]
        )
        assert SECRET not in text, entry.metadata


@pytest.mark.parametrize("action", sorted(API_CASES))
def test_it_records_each_api_action_once_with_key_and_address(action, world, api_as):
    api = api_as(world.owner, world.workspace)
    call, target = API_CASES[action]
    before = set(AuditEntry.objects.values_list("pk", flat=True))
    response = call(api, world)
    assert response.status_code < 300, response.content
    (entry,) = _new_entries(before)
    assert entry.action == action
    assert entry.target_id == target(world, response)
    assert entry.workspace_id == world.workspace.id
    assert entry.actor_id == world.owner.pk
    assert entry.actor_email == world.owner.email
    assert entry.key_prefix == api.key.prefix
    assert entry.address == API_ADDRESS
    assert entry.status == AuditStatus.SUCCESS
    _assert_no_secret()


def test_it_records_nothing_for_a_refused_change(world, api_as, viewer):
    api = api_as(viewer, world.workspace)
    before = AuditEntry.objects.count()
    assert api.put(f"/v1/services/{world.service.id}/env-vars/X", {"value": "y"}).status_code == 403
    assert (
        api.post(f"/v1/services/{world.service.id}/jobs", {"startCommand": "x"}).status_code == 403
    )
    assert AuditEntry.objects.count() == before


# action -> (request through the dashboard, expected target id)
PAGE_CASES = {
    "job.create": (
        lambda c, w: c.post(
            f"/services/{w.service.id}/jobs/run/",
            {"start_command": "true", "plan": w.service.plan_id},
        ),
        lambda w: w.service.jobs.order_by("-created_at", "-id").first().id,
    ),
    "job.rerun": (
        lambda c, w: c.post(f"/services/{w.service.id}/jobs/{w.job.id}/rerun/"),
        lambda w: w.service.jobs.order_by("-created_at", "-id").first().id,
    ),
    "job.cancel": (
        lambda c, w: c.post(f"/services/{w.service.id}/jobs/{w.job.id}/cancel/"),
        lambda w: w.job.id,
    ),
    "env_var.set": (
        lambda c, w: c.post(f"/services/{w.service.id}/env/", {"key": "TOKEN", "value": SECRET}),
        lambda w: w.service.id,
    ),
    "env_var.delete": (
        lambda c, w: c.post(f"/services/{w.service.id}/env/DEBUG/delete/"),
        lambda w: w.service.id,
    ),
    "env_var.reveal": (
        lambda c, w: c.get(f"/services/{w.service.id}/env/DEBUG/reveal/", HTTP_HX_REQUEST="true"),
        lambda w: w.service.id,
    ),
    "service.update": (
        lambda c, w: c.post(f"/services/{w.service.id}/settings/", {"max_concurrent_jobs": "2"}),
        lambda w: w.service.id,
    ),
    "build.trigger": (
        lambda c, w: c.post(f"/services/{w.service.id}/builds/new/"),
        lambda w: w.service.builds.order_by("-created_at", "-id").first().id,
    ),
    "api_key.create": (
        lambda c, w: c.post(f"/workspaces/{w.workspace.id}/api-keys/", {"name": "deploy"}),
        lambda w: ApiKey.objects.get(name="deploy").prefix,
    ),
    "api_key.revoke": (
        lambda c, w: c.post(f"/workspaces/{w.workspace.id}/api-keys/{w.key.pk}/revoke/"),
        lambda w: w.key.prefix,
    ),
    "log_stream.create": (
        lambda c, w: (
            WorkspaceLogStream.objects.all().delete(),
            c.post(
                f"/settings/log-stream/?workspace={w.workspace.id}",
                {"endpoint": "127.0.0.1:6514", "token": SECRET, "enabled": "on", "preview": "send"},
            ),
        )[1],
        lambda w: w.workspace.id,
    ),
    "log_stream.update": (
        lambda c, w: c.post(
            f"/settings/log-stream/?workspace={w.workspace.id}",
            {"endpoint": "127.0.0.1:6515", "token": SECRET, "preview": "drop"},
        ),
        lambda w: w.workspace.id,
    ),
    "log_stream.delete": (
        lambda c, w: c.post(f"/settings/log-stream/delete/?workspace={w.workspace.id}"),
        lambda w: w.workspace.id,
    ),
    "webhook.create": (
        lambda c, w: c.post(
            f"/workspaces/{w.workspace.id}/webhooks/",
            {"name": "new", "url": WEBHOOK_URL, "enabled": "on"},
        ),
        lambda w: Webhook.objects.get(name="new").id,
    ),
    "webhook.update": (
        lambda c, w: c.post(
            f"/workspaces/{w.workspace.id}/webhooks/{w.webhook.id}/",
            {"name": "renamed", "url": WEBHOOK_URL, "enabled": "on"},
        ),
        lambda w: w.webhook.id,
    ),
    "webhook.delete": (
        lambda c, w: c.post(f"/workspaces/{w.workspace.id}/webhooks/{w.webhook.id}/delete/"),
        lambda w: w.webhook.id,
    ),
}


@pytest.mark.parametrize("action", sorted(PAGE_CASES))
def test_it_records_each_dashboard_action_once_with_the_address(action, world, page_as):
    client = page_as(world.owner)
    call, target = PAGE_CASES[action]
    before = set(AuditEntry.objects.values_list("pk", flat=True))
    response = call(client, world)
    assert response.status_code in (200, 302), response.content[:2000]
    (entry,) = _new_entries(before)
    assert entry.action == action
    assert entry.target_id == target(world)
    assert entry.workspace_id == world.workspace.id
    assert entry.actor_id == world.owner.pk
    assert entry.key_prefix == ""
    assert entry.address == PAGE_ADDRESS
    _assert_no_secret()


def test_it_records_a_sign_in_and_a_failed_one_without_the_password(world):
    client = Client(REMOTE_ADDR=PAGE_ADDRESS)
    wrong = "not-the-password-" + SECRET
    response = client.post("/login/", {"username": world.owner.username, "password": wrong})
    assert response.status_code == 200  # the form again
    (failed,) = AuditEntry.objects.filter(action="signin.failed")
    assert failed.status == AuditStatus.FAILURE
    assert failed.actor_id is None
    assert failed.actor_name == world.owner.username
    assert failed.workspace_id == world.workspace.id
    assert failed.address == PAGE_ADDRESS
    response = client.post("/login/", {"username": world.owner.username, "password": "pw"})
    assert response.status_code == 302
    (signin,) = AuditEntry.objects.filter(action="signin")
    assert signin.actor_id == world.owner.pk
    assert signin.status == AuditStatus.SUCCESS
    assert signin.address == PAGE_ADDRESS
    _assert_no_secret()
    assert all("not-the-password" not in json.dumps(e.metadata) for e in AuditEntry.objects.all())


def test_a_failed_sign_in_of_an_unknown_name_is_in_no_workspace(world):
    client = Client(REMOTE_ADDR=PAGE_ADDRESS)
    client.post("/login/", {"username": "<script>mallory</script>", "password": "x"})
    (failed,) = AuditEntry.objects.filter(action="signin.failed")
    assert failed.workspace_id is None
    assert failed.actor_name == "<script>mallory</script>"


def test_the_actor_survives_the_users_deletion(world, api_as):
    api = api_as(world.owner, world.workspace)
    api.post(f"/v1/services/{world.service.id}/suspend")
    world.owner.delete()
    (entry,) = AuditEntry.objects.filter(action="service.suspend")
    assert entry.actor_id is None
    assert entry.actor_email == "alice@acme.test"
    assert entry.actor_label == "alice@acme.test"


def test_no_env_value_is_in_any_entry_nor_in_what_shows_them(world, api_as, page_as):
    """Every way a value goes in (env var set, replace, service create, job overrides, the
    page's form and reveal), then every entry's text, the API's answer and the page searched."""
    api = api_as(world.owner, world.workspace)
    page = page_as(world.owner)
    sid = world.service.id
    assert api.put(f"/v1/services/{sid}/env-vars/A", {"value": SECRET}).status_code == 200
    replace = [{"key": "B", "value": SECRET}, {"key": "DEBUG", "value": "0"}]
    assert api.put(f"/v1/services/{sid}/env-vars", replace).status_code == 200
    created = api.post(
        "/v1/services",
        {
            "type": "web_service",
            "name": "with-env",
            "ownerId": world.workspace.id,
            "image": {"imagePath": "oneoff/busybox:latest"},
            "envVars": [{"key": "C", "value": SECRET}],
        },
    )
    assert created.status_code == 201
    job = api.post(
        f"/v1/services/{sid}/jobs",
        {"startCommand": "env", "envVars": [{"key": "D", "value": SECRET}]},
    )
    assert job.status_code == 201
    assert page.post(f"/services/{sid}/env/", {"key": "E", "value": SECRET}).status_code == 302
    ran = page.post(
        f"/services/{sid}/jobs/run/",
        {"start_command": "env", "plan": world.service.plan_id, "env_overrides": f"F={SECRET}"},
    )
    assert ran.status_code == 302
    reveal = page.get(f"/services/{sid}/env/E/reveal/", HTTP_HX_REQUEST="true")
    assert SECRET in reveal.content.decode()  # the admin sees it; the trail must not keep it

    assert AuditEntry.objects.count() == 7
    _assert_no_secret()
    for entry in AuditEntry.objects.all():
        assert SECRET not in repr(entry.__dict__)
    listed = api.get(f"/v1/owners/{world.workspace.id}/audit-logs", {"limit": 100})
    assert len(listed.json()) == 7
    assert SECRET not in listed.content.decode()
    shown = page.get(f"/workspaces/{world.workspace.id}/audit/")
    assert SECRET not in shown.content.decode()
    keys = {e.action: e.metadata for e in AuditEntry.objects.all()}
    assert keys["env_var.reveal"] == {"key": "E"}
    assert keys["job.create"]["envOverrideKeys"] in (["D"], ["F"])

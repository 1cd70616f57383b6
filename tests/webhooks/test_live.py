"""Webhooks for real: Render's Python client (PyPI ``render``) against a live Oneoff, real Celery
workers delivering to a real HTTPS receiver that verifies every signature with the
``standardwebhooks`` library, PostgreSQL, Redis, and a job run by the Docker Engine."""

import tempfile
from pathlib import Path

import httpx
import pytest
from render.public_api.api.services import resume_service, suspend_service
from render.public_api.api.webhooks import (
    create_webhook,
    delete_webhook,
    list_webhook_events,
    list_webhooks,
    retrieve_webhook,
    update_webhook,
)
from render.public_api.models import (
    Error,
    EventType,
    Webhook,
    WebhookEventWithCursor,
    WebhookPATCHInput,
    WebhookPOSTInput,
    WebhookWithCursor,
)

from jobs.launch import create_job
from jobs.models import JobStatus
from services.models import EnvVar
from tests.helpers import make_pki, wait_finished, wait_for
from tests.plugins.webhooks import HttpsReceiver
from webhooks.models import Delivery

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# The worker subprocesses trust this module's test CA, and retry after 2 s.
PKI = make_pki(Path(tempfile.mkdtemp(prefix="oneoff-pki-")))
WORKER_ENV = {
    "WEBHOOK_CA_FILE": PKI.ca_file,
    "WEBHOOK_RETRY_SCHEDULE": "2,2,2,2,2",
    "WEBHOOK_TIMEOUT": "5",
}


@pytest.fixture
def receiver():
    server = HttpsReceiver(PKI.server_pem).start()
    yield server
    server.stop()
    assert not server.errors, server.errors


@pytest.fixture
def other_receiver():
    server = HttpsReceiver(PKI.server_pem).start()
    yield server
    server.stop()


def test_renders_client_manages_webhooks_and_reads_their_events(
    live_worker, render, receiver, other_receiver, workspace, job_service
):
    made = create_webhook.sync_detailed(
        client=render,
        body=WebhookPOSTInput(
            owner_id=workspace.id,
            url=receiver.url,
            name="ops",
            enabled=True,
            event_filter=[EventType.SERVICE_SUSPENDED, EventType.SERVICE_RESUMED],
        ),
    )
    assert made.status_code == 201
    hook = made.parsed
    assert isinstance(hook, Webhook)
    assert hook.secret.startswith("whsec_")
    receiver.secret = hook.secret
    builds_only = create_webhook.sync(
        client=render,
        body=WebhookPOSTInput(
            owner_id=workspace.id,
            url=other_receiver.url,
            name="builds",
            enabled=True,
            event_filter=[EventType.BUILD_ENDED],
        ),
    )
    assert isinstance(builds_only, Webhook)

    listed = list_webhooks.sync(client=render, owner_id=[workspace.id], limit=1)
    assert all(isinstance(item, WebhookWithCursor) for item in listed)
    more = list_webhooks.sync(client=render, owner_id=[workspace.id], cursor=listed[0].cursor)
    assert {item.webhook.id for item in listed + more} == {hook.id, builds_only.id}
    got = retrieve_webhook.sync(hook.id, client=render)
    assert isinstance(got, Webhook)
    assert got.to_dict() == {**hook.to_dict(), "updatedAt": got["updatedAt"]}
    renamed = update_webhook.sync(hook.id, client=render, body=WebhookPATCHInput(name="ops 2"))
    assert isinstance(renamed, Webhook)
    assert renamed.name == "ops 2"
    assert renamed.event_filter == [EventType.SERVICE_SUSPENDED, EventType.SERVICE_RESUMED]

    # An event: delivered by a worker, signed (the receiver verifies every request).
    assert suspend_service.sync_detailed(job_service.id, client=render).status_code == 202
    (first,) = receiver.wait_for(1)
    assert first.verified
    assert first.payload["type"] == "service_suspended"
    assert first.payload["data"]["serviceId"] == job_service.id

    # The receiver down, then up: a retry delivers it.
    receiver.stop()
    assert resume_service.sync_detailed(job_service.id, client=render).status_code == 202
    wait_for(
        lambda: (
            Delivery.objects.filter(webhook_id=hook.id, attempts__gte=1, state="pending")
            .exclude(last_error="")
            .exists()
        ),
        20,
        0.1,
        "a failed first attempt",
    )
    receiver.start()
    resumed = receiver.wait_for(1, type="service_resumed", timeout=20)
    assert len(resumed) == 1
    assert resumed[0].verified

    wait_for(
        lambda: not Delivery.objects.filter(webhook_id=hook.id, state="pending").exists(),
        10,
        0.05,
        "the delivery recorded",
    )
    events = list_webhook_events.sync(hook.id, client=render)
    assert all(isinstance(item, WebhookEventWithCursor) for item in events)
    attempts = [item.webhook_event for item in events]
    newest, failed, oldest = attempts[0], attempts[1], attempts[-1]
    assert newest.event_type == EventType.SERVICE_RESUMED
    assert newest.status_code == 200
    assert newest.response_body == '{"ok":true}'
    assert failed.event_id == newest.event_id == resumed[0].headers["webhook-id"]
    assert failed.error.startswith("cannot connect to 127.0.0.1")
    assert oldest.event_type == EventType.SERVICE_SUSPENDED
    assert oldest.event_id == first.headers["webhook-id"]

    # The filter held: the builds-only webhook got nothing.
    assert other_receiver.received == []
    assert not Delivery.objects.filter(webhook_id=builds_only.id).exists()

    # A re-send (Oneoff's extension) carries the same webhook-id and body.
    resent = httpx.post(
        f"{render._base_url}/webhooks/{hook.id}/events/{first.headers['webhook-id']}/resend",
        headers={"Authorization": f"Bearer {render.token}"},
    )
    assert resent.status_code == 202
    again = receiver.wait_for(3, timeout=20)[-1]
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.body == first.body
    assert again.verified

    assert delete_webhook.sync_detailed(hook.id, client=render).status_code == 204
    missing = retrieve_webhook.sync(hook.id, client=render)
    assert isinstance(missing, Error)


def test_job_run_ended_carries_the_exit_the_reason_and_the_last_50_lines_masked(
    live_worker, render, receiver, workspace, job_service, owner
):
    hook = create_webhook.sync(
        client=render,
        body=WebhookPOSTInput(
            owner_id=workspace.id,
            url=receiver.url,
            name="jobs",
            enabled=True,
            event_filter=[EventType.JOB_RUN_ENDED],
        ),
    )
    receiver.secret = hook.secret
    EnvVar.objects.create(service=job_service, key="DB_PASSWORD", value="s3cr3t-value")
    job = create_job(
        job_service,
        'for i in $(seq 1 80); do echo "line $i pw=$DB_PASSWORD"; done; echo "oops" >&2; exit 3',
        user=owner,
    )
    wait_finished(job)
    assert job.status == JobStatus.FAILED
    (got,) = receiver.wait_for(1, timeout=30)
    assert got.verified
    assert got.headers["webhook-id"].startswith("evt-")
    data = got.payload["data"]
    assert got.payload["type"] == "job_run_ended"
    assert data["jobId"] == job.id
    assert data["status"] == "failed"
    assert data["exitCode"] == 3
    assert data["reason"] == {"nonZeroExit": 3}
    assert data["job"]["id"] == job.id
    assert data["job"]["status"] == "failed"
    assert data["cost"] == str(job.cost)
    assert data["billedSeconds"] == job.billed_seconds
    assert data["durationSeconds"] == pytest.approx(job.duration_seconds)
    stored = list(job.log_lines.order_by("seq").values_list("stream", "text"))
    assert len(stored) == 81
    last = [
        ("stderr" if s == 2 else "stdout", t.replace("s3cr3t-value", "****")) for s, t in stored
    ]
    texts = [(line["stream"], line["text"]) for line in data["logs"]]
    assert texts == last[-50:]  # the last 50 as stored, the secret masked
    assert ("stdout", "line 80 pw=****") in texts
    assert ("stderr", "oops") in last  # stored with its stream (where the engine's order put it)
    assert "s3cr3t-value" not in got.body.decode()

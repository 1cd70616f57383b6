"""Env values masked in job logs, for real: Docker jobs followed by a Celery worker subprocess into
PostgreSQL, then read back from every outlet: the database, the log stream (a real TLS syslog
receiver), the ``job_run_ended`` webhook (a real HTTPS receiver that verifies the signature),
the dashboard's download and the logs API."""

import tempfile
from pathlib import Path

import pytest
from django.test import Client

from jobs.launch import create_job
from jobs.models import JobStatus
from logstreams.models import WorkspaceLogStream
from services.models import ApiKey, EnvVar
from tests.helpers import ApiClient, Receiver, make_pki, wait_finished, wait_status
from tests.plugins.webhooks import HttpsReceiver
from webhooks.delivery import LOG_LINE_CHARS
from webhooks.models import Webhook

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# The worker subprocess trusts this module's test CA (log stream and webhooks alike).
PKI = make_pki(Path(tempfile.mkdtemp(prefix="oneoff-pki-")))
WORKER_ENV = {
    "LOG_STREAM_CA_FILE": PKI.ca_file,
    "LOG_STREAM_RETRY_MAX": "0.3",
    "WEBHOOK_CA_FILE": PKI.ca_file,
    "WEBHOOK_RETRY_SCHEDULE": "2,2,2,2,2",
    "WEBHOOK_TIMEOUT": "5",
}

SECRET = "hunter2-secret"
PIN = "4242"  # short, marked secret
NAME = "short"  # short, not secret: shown
PAD = 16380  # Docker cuts a line into 16 KiB messages: the value straddles the first cut
# Printed whole, split across two writes, inside a longer word, short values, and straddling
# two of Docker's messages (the pieces of one long line). The job sleeps first, so that the test
# changes the env vars while it runs.
COMMAND = (
    "sleep 1; "
    'echo "whole $API_TOKEN"; '
    "printf 'hun'; sleep 0.2; printf 'ter2-secret split\\n'; "
    'echo "word-x${API_TOKEN}y"; '
    'echo "name $NAME pin $PIN"; '
    f"head -c {PAD} /dev/zero | tr '\\0' x; printf '%s tail\\n' \"$API_TOKEN\""
)
MASKED = [
    "whole ****",
    "**** split",
    "word-x****y",
    f"name {NAME} pin ****",
    "x" * PAD + "****",
    " tail",
]
PLAIN = [
    f"whole {SECRET}",
    f"{SECRET} split",
    f"word-x{SECRET}y",
    f"name {NAME} pin {PIN}",
    "x" * PAD + SECRET[:4],
    SECRET[4:] + " tail",
]


@pytest.fixture
def syslog():
    server = Receiver(PKI.server_pem).start()
    yield server
    server.stop()
    assert not server.errors, server.errors


@pytest.fixture
def hooks():
    server = HttpsReceiver(PKI.server_pem).start()
    yield server
    server.stop()
    assert not server.errors, server.errors


@pytest.fixture
def outlets(job_service, workspace, syslog, hooks):
    """The service's env, a log stream to ``syslog`` and a job_run_ended webhook to ``hooks``."""
    EnvVar.objects.create(service=job_service, key="API_TOKEN", value=SECRET)
    EnvVar.objects.create(service=job_service, key="PIN", value=PIN, secret=True)
    EnvVar.objects.create(service=job_service, key="NAME", value=NAME)
    WorkspaceLogStream.objects.create(workspace=workspace, endpoint=syslog.endpoint, token="t-1")
    hook = Webhook.objects.create(
        workspace=workspace, name="jobs", url=hooks.url, event_filter=["job_run_ended"]
    )
    hooks.secret = hook.secret
    return job_service


def run(service, owner):
    """Run COMMAND; while it runs, the service's env changes (the snapshot's values count)."""
    job = create_job(service, COMMAND, user=owner)
    wait_status(job, JobStatus.RUNNING)
    EnvVar.objects.filter(service=service, key="API_TOKEN").update(value="rotated-value-1")
    EnvVar.objects.filter(service=service, key="PIN").update(secret=False)
    wait_finished(job, timeout=30)
    assert job.status == JobStatus.SUCCEEDED, job.reason
    return job


def outlet_texts(job, owner, workspace, syslog, hooks) -> dict[str, list[str]]:
    """The job's lines as each outlet has them, in order."""
    stored = list(job.log_lines.order_by("seq").values_list("text", flat=True))
    streamed = sorted(syslog.wait_for(len(stored), timeout=20), key=lambda m: int(m.params["seq"]))
    (delivery,) = hooks.wait_for(1, timeout=30)
    assert delivery.verified
    browser = Client()
    browser.force_login(owner)
    download = browser.get(f"/services/{job.service_id}/jobs/{job.id}/logs.txt")
    assert download.status_code == 200
    downloaded = [
        line.split("\t", 2)[2]
        for line in b"".join(download.streaming_content).decode().splitlines()
    ]
    _, secret = ApiKey.issue(owner, workspace)
    api = ApiClient(secret, None).get(
        "/v1/logs", {"ownerId": workspace.id, "resource": job.id, "direction": "forward"}
    )
    assert api.status_code == 200, api.content
    return {
        "database": stored,
        "log stream": [m.msg for m in streamed],
        "webhook": [line["text"] for line in delivery.payload["data"]["logs"]],
        "download": downloaded,
        "logs API": [entry["message"] for entry in api.json()["logs"]],
    }


def test_values_are_masked_in_the_database_stream_webhook_and_download(
    live_worker, outlets, owner, workspace, syslog, hooks
):
    job = run(outlets, owner)
    texts = outlet_texts(job, owner, workspace, syslog, hooks)
    assert texts["database"] == MASKED
    assert texts["log stream"] == MASKED
    assert texts["webhook"] == [text[:LOG_LINE_CHARS] for text in MASKED]
    assert texts["download"] == MASKED
    assert sorted(texts["logs API"]) == sorted(MASKED)
    everything = repr(texts)
    assert SECRET not in everything
    assert PIN not in everything
    assert "hun" not in everything.replace("****", "")  # no piece of the value either
    assert job.env_snapshot.secret_keys == ["PIN"]


def test_with_masking_off_nothing_is_masked(live_worker, outlets, owner, workspace, syslog, hooks):
    outlets.mask_secrets = False
    outlets.save()
    job = run(outlets, owner)
    texts = outlet_texts(job, owner, workspace, syslog, hooks)
    assert texts["database"] == PLAIN
    assert texts["log stream"] == PLAIN
    assert texts["webhook"] == [text[:LOG_LINE_CHARS] for text in PLAIN]
    assert texts["download"] == PLAIN
    assert sorted(texts["logs API"]) == sorted(PLAIN)

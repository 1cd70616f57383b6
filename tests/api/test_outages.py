"""The API and the dashboard while a part is down (issue 14, points 2 and 4).

- PostgreSQL not answering: 503 with ``Retry-After`` (the API's ``{id, message}``, the dashboard a
  plain page), never a 500.
- A job create whose row committed answers 201 whatever fails after the commit (the re-read, the
  start message); one whose row did not commit is an error and leaves no job.
- Redis (cache and broker) stopped, or frozen so it never answers (as when packets are dropped):
  reads 200, creates 201, within the cache's and the broker's socket timeouts.
"""

import contextlib
import signal
import socket
import time

import pytest
from django.db import OperationalError, connection
from django.test import Client

from config.celery import app
from config.settings import cache_config
from jobs.models import Job, JobStatus
from services.outage import RETRY_AFTER_SECONDS
from tests.helpers import PrivateRedis, assert_error, missing_part

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def database_down():
    """The test's database connection pointed at a port nobody listens on (PostgreSQL down), then
    back."""
    if connection.vendor != "postgresql":
        missing_part("PostgreSQL (the outage is a port where it does not listen)")
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(closed_port())
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port


def assert_unavailable(response):
    assert response.status_code == 503, response.content[:500]
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_the_api_answers_503_with_retry_after_while_the_database_is_down(
    owner_api, built_service, caplog
):
    owner_api.client.raise_request_exception = False
    with database_down():
        for response in (
            owner_api.get("/v1/services"),
            owner_api.get(f"/v1/services/{built_service.id}/jobs"),
            owner_api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "echo"}),
        ):
            assert_unavailable(response)
            assert_error(response, 503, id="unavailable")
            assert "database" in response.json()["message"]
    assert "Traceback" not in caplog.text
    assert owner_api.get("/v1/services").status_code == 200  # and back


def test_the_dashboard_and_healthz_answer_a_plain_503_while_the_database_is_down(owner, caplog):
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    with database_down():
        for path in ("/", "/healthz", "/login/"):
            response = client.get(path)
            if path == "/login/" and response.status_code == 200:
                continue  # the sign-in form needs no database
            assert_unavailable(response)
            assert response["Content-Type"].startswith("text/html")
            assert b"Temporarily unavailable" in response.content
    # One line per request, no traceback (Django's own record of it is filtered out).
    assert "Traceback" not in caplog.text
    assert not any(r.exc_info for r in caplog.records), caplog.text
    assert any("database unavailable: GET /" in r.getMessage() for r in caplog.records)
    assert client.get("/").status_code in (200, 302)  # and back


def test_a_create_answers_201_when_the_re_read_after_the_commit_fails(
    owner_api, built_service, monkeypatch
):
    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("api.routers.jobs.job_of", database_gone)
    response = owner_api.post(f"/v1/services/{built_service.id}/jobs", {"startCommand": "echo"})
    assert response.status_code == 201, response.content
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert job.status == JobStatus.PENDING
    assert body["status"] == "pending"
    assert body["startCommand"] == "echo"
    assert body["buildId"] == job.build_id
    assert body["envDigest"] == job.env_snapshot.digest
    assert body["createdAt"].startswith(job.created_at.strftime("%Y-%m-%dT%H:%M:%S"))


def test_a_create_answers_201_when_the_start_message_cannot_be_sent(
    owner_api, built_service, monkeypatch
):
    def broker_gone(job_id):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr("jobs.launch.enqueue_start", broker_gone)
    url = f"/v1/services/{built_service.id}/jobs"
    response = owner_api.post(url, {"startCommand": "echo"})
    assert response.status_code == 201, response.content
    assert Job.objects.filter(pk=response.json()["id"], status=JobStatus.PENDING).exists()

    # With an Idempotency-Key the stored answer is that 201, and a retry creates nothing new.
    headers = {"Idempotency-Key": "outage-1"}
    first = owner_api.post(url, {"startCommand": "echo"}, headers=headers)
    again = owner_api.post(url, {"startCommand": "echo"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert Job.objects.filter(service=built_service).count() == 2


def test_a_create_whose_row_did_not_commit_is_an_error_and_leaves_no_job(
    owner_api, built_service, monkeypatch
):
    # With an Idempotency-Key the re-read runs inside the transaction that also stores the
    # response: its failure rolls the job back, and the retry with the same key creates it.
    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    url = f"/v1/services/{built_service.id}/jobs"
    headers = {"Idempotency-Key": "outage-2"}
    with monkeypatch.context() as patched:
        patched.setattr("api.routers.jobs.job_of", database_gone)
        response = owner_api.post(url, {"startCommand": "echo"}, headers=headers)
    assert_unavailable(response)
    assert not Job.objects.filter(service=built_service).exists()
    retried = owner_api.post(url, {"startCommand": "echo"}, headers=headers)
    assert retried.status_code == 201
    assert Job.objects.filter(service=built_service).count() == 1


@pytest.fixture
def redis(tmp_path):
    server = PrivateRedis(tmp_path).start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)
    server.stop(kill=True)


@pytest.fixture
def on_private_redis(redis, settings, monkeypatch):
    """The cache and the broker on ``redis``, with the socket timeouts of config/settings.py."""
    settings.CACHES = {"default": cache_config(redis.url(1))}
    send_task = app.send_task

    def send_task_to_private_broker(name, args=None, kwargs=None, **options):
        with app.connection_for_write(redis.url(0)) as broker:
            return send_task(name, args, kwargs, connection=broker, **options)

    monkeypatch.setattr(app, "send_task", send_task_to_private_broker)
    return redis


def reads_and_a_create(api, service) -> list[tuple[int, float]]:
    """(status, seconds) of two reads and a create."""
    answers = []
    for method, url, body in (
        ("GET", "/v1/services", None),
        ("GET", f"/v1/services/{service.id}/jobs", None),
        ("POST", f"/v1/services/{service.id}/jobs", {"startCommand": "echo"}),
    ):
        started = time.monotonic()
        response = api.request(method, url, body)
        answers.append((response.status_code, time.monotonic() - started))
    return answers


def test_reads_and_creates_are_served_while_redis_is_stopped(
    owner_api, built_service, on_private_redis, caplog
):
    assert [s for s, _ in reads_and_a_create(owner_api, built_service)] == [200, 200, 201]
    on_private_redis.stop()  # a clean shutdown: connections in the pools are closed on them
    assert [s for s, _ in reads_and_a_create(owner_api, built_service)] == [200, 200, 201]
    assert "rate-limit cache unavailable" in caplog.text
    assert Job.objects.filter(service=built_service).count() == 2


def test_reads_and_creates_are_served_while_redis_drops_everything(
    owner_api, built_service, on_private_redis, caplog
):
    assert [s for s, _ in reads_and_a_create(owner_api, built_service)] == [200, 200, 201]
    # Frozen: the kernel still accepts connections, nothing is ever answered, as with a host
    # that drops packets. The cache's socket timeouts bound each request's wait.
    assert on_private_redis.process is not None
    on_private_redis.process.send_signal(signal.SIGSTOP)
    answers = reads_and_a_create(owner_api, built_service)
    on_private_redis.process.send_signal(signal.SIGCONT)
    assert [s for s, _ in answers] == [200, 200, 201]
    assert all(seconds < 3 for _, seconds in answers[:2]), answers  # the cache's timeouts
    assert answers[2][1] < 10, answers  # the broker's (the cache's, then the start message's)
    assert Job.objects.filter(service=built_service).count() == 2
    assert "rate-limit cache unavailable" in caplog.text

"""Idempotency-Key on POST /v1/services/{id}/jobs, sequential and concurrent (PostgreSQL)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import IdempotencyKey, Job
from jobs.tasks import purge_idempotency_keys
from tests.helpers import assert_error


def create(api, service, body, key):
    return api.post(f"/v1/services/{service.id}/jobs", body, headers={"Idempotency-Key": key})


def test_a_retry_returns_the_first_job_and_starts_nothing(
    owner_api, built_service, django_capture_on_commit_callbacks, monkeypatch
):
    body = {"startCommand": "echo once"}
    sent: list[str] = []
    monkeypatch.setattr("jobs.launch.enqueue_start", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        first = create(owner_api, built_service, body, "k-1")
        again = create(owner_api, built_service, body, "k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert Job.objects.count() == 1
    assert sent == [first.json()["id"]]  # one start message


def test_the_same_key_with_another_body_is_422(owner_api, built_service):
    create(owner_api, built_service, {"startCommand": "echo a"}, "k-2")
    r = create(owner_api, built_service, {"startCommand": "echo b"}, "k-2")
    assert_error(r, 422, id="idempotency_key_reused")
    assert Job.objects.count() == 1


def test_different_keys_start_different_jobs(owner_api, built_service):
    body = {"startCommand": "echo"}
    a = create(owner_api, built_service, body, "k-a").json()
    b = create(owner_api, built_service, body, "k-b").json()
    assert a["id"] != b["id"]


def test_a_key_is_scoped_to_its_service(owner_api, built_service, make_service, make_build):
    other = make_service(name="other")
    make_build(other)
    body = {"startCommand": "echo"}
    a = create(owner_api, built_service, body, "k-s").json()
    b = create(owner_api, other, body, "k-s").json()
    assert a["id"] != b["id"]


def test_a_key_older_than_24_hours_starts_a_new_job(owner_api, built_service):
    body = {"startCommand": "echo"}
    first = create(owner_api, built_service, body, "k-old").json()
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    second = create(owner_api, built_service, body, "k-old").json()
    assert first["id"] != second["id"]


def test_the_periodic_task_forgets_keys_older_than_24_hours(owner_api, built_service):
    create(owner_api, built_service, {"startCommand": "echo"}, "k-stale")
    create(owner_api, built_service, {"startCommand": "echo"}, "k-fresh")
    IdempotencyKey.objects.filter(key="k-stale").update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert purge_idempotency_keys() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["k-fresh"]


def test_a_failed_request_does_not_hold_the_key(owner_api, service, make_build):
    body = {"startCommand": "echo"}
    assert_error(create(owner_api, service, body, "k-f"), 400)  # no build yet
    make_build(service)
    assert create(owner_api, service, body, "k-f").status_code == 201


def test_an_overlong_key_is_400(owner_api, built_service):
    r = create(owner_api, built_service, {"startCommand": "echo"}, "x" * 256)
    assert_error(r, 400, field="Idempotency-Key")


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_start_one_job(make_client, owner, workspace, built_service):
    api = make_client(owner, workspace)
    body = {"startCommand": "echo race"}
    barrier = threading.Barrier(6)
    results = []

    def post():
        try:
            barrier.wait()
            r = create(api, built_service, body, "k-race")
            results.append((r.status_code, r.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 6
    assert {status for status, _ in results} == {201}
    assert len({body["id"] for _, body in results}) == 1
    assert Job.objects.count() == 1

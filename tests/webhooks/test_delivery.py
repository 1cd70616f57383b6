"""Deliveries to a real HTTPS receiver (TLS with the test CA) on PostgreSQL, one attempt at a time
(``delivery.attempt``, what the Celery task runs): signatures the ``standardwebhooks`` library
verifies, retries, re-sends with the same ``webhook-id``, event types and filters, and hostile
receivers."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import runner
from jobs.logs.store import LogWriter
from jobs.models import EnvSnapshot, Job, JobStatus
from services import egress
from services.builds.queue import cancel_build
from services.models import Build, BuildStatus, EnvVar
from services.transitions import transition
from tests.plugins.webhooks import HttpsReceiver
from webhooks import delivery
from webhooks.models import Attempt, Delivery, DeliveryState, Event, Webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(workspace, hook_receiver, webhook_settings):
    webhook = Webhook.objects.create(
        workspace=workspace, name="ci", url=hook_receiver.url, event_filter=[]
    )
    hook_receiver.secret = webhook.secret
    return webhook


def suspend(service, suspended=True):
    return transition(
        type(service).objects.filter(pk=service.pk, suspended=not suspended), suspended=suspended
    )


def attempt_all():
    for pk in Delivery.objects.filter(state=DeliveryState.PENDING).values_list("pk", flat=True):
        delivery.attempt(pk)


def make_due(d):
    Delivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now())


def test_a_delivery_is_signed_and_carries_renders_payload(hook, hook_receiver, service):
    suspend(service)
    (d,) = Delivery.objects.all()
    assert delivery.attempt(d.pk) is None
    (got,) = hook_receiver.received
    assert got.verified  # standardwebhooks.Webhook(secret).verify(body, headers)
    event = Event.objects.get()
    assert got.headers["webhook-id"] == event.id
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 10
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.headers["content-type"] == "application/json"
    assert got.payload["type"] == "service_suspended"
    assert got.payload["data"]["id"] == event.id
    assert got.payload["data"]["serviceId"] == service.id
    assert got.payload["data"]["serviceName"] == service.name
    d.refresh_from_db()
    assert d.state == DeliveryState.DELIVERED
    assert d.attempts == 1
    (a,) = Attempt.objects.all()
    assert a.status_code == 200
    assert a.response_body == '{"ok":true}'
    assert not a.error

    suspend(service)  # already suspended: no change, no event
    assert Event.objects.count() == 1
    suspend(service, False)
    attempt_all()
    assert [r.payload["type"] for r in hook_receiver.received] == [
        "service_suspended",
        "service_resumed",
    ]


def test_a_failed_attempt_is_retried_with_the_same_id_and_body(hook, hook_receiver, service):
    hook_receiver.status, hook_receiver.answer = 503, b"busy, come back"
    suspend(service)
    d = Delivery.objects.get()
    assert delivery.attempt(d.pk) == 1.0  # WEBHOOK_RETRY_SCHEDULE[0]
    d.refresh_from_db()
    assert d.state == DeliveryState.PENDING
    assert d.next_attempt_at > timezone.now()
    assert delivery.attempt(d.pk) is None  # not due yet: nothing sent
    assert len(hook_receiver.received) == 1

    hook_receiver.status, hook_receiver.answer = 200, b"thanks"
    make_due(d)
    delivery.attempt(d.pk)
    first, second = hook_receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert first.verified
    assert second.verified
    d.refresh_from_db()
    assert d.state == DeliveryState.DELIVERED
    assert d.attempts == 2
    codes = list(Attempt.objects.order_by("number").values_list("number", "status_code"))
    assert codes == [(1, 503), (2, 200)]
    assert Attempt.objects.get(number=1).response_body == "busy, come back"

    # A re-send: same webhook-id, same body, newly signed.
    delivery.resend(d)
    delivery.attempt(d.pk)
    third = hook_receiver.received[2]
    assert third.headers["webhook-id"] == first.headers["webhook-id"]
    assert third.body == first.body
    assert third.verified


def test_the_schedule_ends_failed(hook, hook_receiver, service, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0.0, 0.0]
    hook_receiver.status = 500
    suspend(service)
    d = Delivery.objects.get()
    for _ in range(5):
        delivery.attempt(d.pk)
    d.refresh_from_db()
    assert d.state == DeliveryState.FAILED
    assert d.attempts == 3
    assert len(hook_receiver.received) == 3


def test_down_then_up_gets_it_on_a_retry(hook, hook_receiver, service):
    hook_receiver.stop()
    suspend(service)
    d = Delivery.objects.get()
    delivery.attempt(d.pk)
    a = Attempt.objects.get()
    assert a.status_code is None
    assert a.error.startswith("cannot connect to 127.0.0.1")
    hook_receiver.start()  # the same port
    make_due(d)
    delivery.attempt(d.pk)
    assert len(hook_receiver.received) == 1
    assert hook_receiver.received[0].verified
    d.refresh_from_db()
    assert d.state == DeliveryState.DELIVERED


def test_event_filter_and_disabled_webhooks(workspace, service, hook_receiver, webhook_settings):
    Webhook.objects.create(
        workspace=workspace, name="builds", url=hook_receiver.url, event_filter=["build_ended"]
    )
    Webhook.objects.create(workspace=workspace, name="off", url=hook_receiver.url, enabled=False)
    suspend(service)
    assert not Event.objects.exists()  # nobody wants it: nothing written

    build = Build.objects.create(service=service)
    cancel_build(build)
    (event,) = Event.objects.all()
    assert event.type == "build_ended"
    assert event.details["buildStatus"] == "canceled"
    assert Delivery.objects.get().webhook.name == "builds"


def test_build_and_deploy_events(workspace, service, hook, hook_receiver):
    build = Build.objects.create(service=service)
    from services.builds.queue import claim_next

    assert claim_next(service.id).pk == build.pk
    transition(
        Build.objects.filter(pk=build.pk, status=BuildStatus.BUILDING),
        status=BuildStatus.SUCCEEDED,
        finished_at=timezone.now(),
    )
    types = list(Event.objects.order_by("created_at", "id").values_list("type", flat=True))
    assert types == ["build_started", "build_ended", "deploy_started", "deploy_ended"]
    attempt_all()
    payloads = {r.payload["type"]: r.payload["data"] for r in hook_receiver.received}
    assert payloads["build_started"]["buildId"] == build.id
    assert payloads["deploy_ended"] == {
        **payloads["deploy_ended"],
        "deployId": build.id,
        "buildId": build.id,
        "deployStatus": "succeeded",
    }


def test_job_run_ended_carries_the_job_exit_reason_cost_and_last_50_lines_masked(
    workspace, service, hook, hook_receiver, make_build
):
    EnvVar.objects.create(service=service, key="API_TOKEN", value="hunter2-secret")
    build = make_build(service)
    job = Job.objects.create(
        workspace=workspace,
        service=service,
        start_command="run",
        plan=service.plan,
        build=build,
        env_snapshot=EnvSnapshot.capture(service),
        status=JobStatus.RUNNING,
        started_at=timezone.now(),
    )
    # Through ingest (jobs.logs.store), which masks the snapshot's values as it stores them.
    writer = LogWriter.for_job(job.id)
    now_ns = time.time_ns()
    for i in range(1, 101):
        writer.add(now_ns + i, 1, f"line {i} token=hunter2-secret\n".encode())
    writer.finish()
    state = {"ExitCode": 3, "FinishedAt": None, "OOMKilled": False}
    assert runner.record_exit(Job.objects.select_related("plan").get(pk=job.pk), state)
    attempt_all()
    (got,) = hook_receiver.received
    assert got.verified
    data = got.payload["data"]
    assert got.payload["type"] == "job_run_ended"
    assert data["jobId"] == job.id
    assert data["status"] == "failed"
    assert data["exitCode"] == 3
    assert data["reason"] == {"nonZeroExit": 3}
    assert data["job"]["id"] == job.id
    assert data["job"]["exitCode"] == 3
    assert data["cost"] == data["job"]["cost"]
    assert data["durationSeconds"] >= 0
    assert [line["text"] for line in data["logs"]] == [
        f"line {i} token=****" for i in range(51, 101)
    ]
    assert "hunter2-secret" not in got.body.decode()


def test_a_slow_receiver_cannot_hold_a_worker(hook, hook_receiver, service, settings):
    settings.WEBHOOK_TIMEOUT = 1.0
    hook_receiver.delay = 5
    suspend(service)
    started = time.monotonic()
    delivery.attempt(Delivery.objects.get().pk)
    assert time.monotonic() - started < 2.5
    assert Attempt.objects.get().error == "no answer within 1 s"


def test_a_trickling_answer_is_cut_at_the_deadline(hook, hook_receiver, service, settings):
    settings.WEBHOOK_TIMEOUT = 1.5
    hook_receiver.trickle = True
    hook_receiver.answer = b"x" * 100
    suspend(service)
    started = time.monotonic()
    delivery.attempt(Delivery.objects.get().pk)
    assert time.monotonic() - started < 3.5


def test_a_huge_answer_is_not_stored(hook, hook_receiver, service):
    hook_receiver.answer = b"<b>" + b"A" * 5_000_000
    suspend(service)
    delivery.attempt(Delivery.objects.get().pk)
    a = Attempt.objects.get()
    assert a.status_code == 200
    assert len(a.response_body) == 2048


def test_a_redirect_to_a_private_address_is_not_followed(
    hook, hook_receiver, service, pki, settings
):
    private = HttpsReceiver(pki.server_pem).start()  # stands for an internal service
    try:
        hook_receiver.status = 307
        hook_receiver.headers_out = {"Location": private.url}
        suspend(service)
        delivery.attempt(Delivery.objects.get().pk)
        a = Attempt.objects.get()
        assert a.status_code == 307
        assert a.error == "redirects are not followed"
        assert private.received == []
        assert Delivery.objects.get().state == DeliveryState.PENDING  # a failed attempt
    finally:
        private.stop()


def test_the_egress_rules_are_checked_on_every_attempt(hook, hook_receiver, service, settings):
    settings.EGRESS_ALLOW = []  # the URL was allowed when it was set; not any more
    suspend(service)
    delivery.attempt(Delivery.objects.get().pk)
    assert Attempt.objects.get().error.startswith("cannot connect to 127.0.0.1")
    assert hook_receiver.received == []


def test_an_untrusted_certificate_is_refused(hook, hook_receiver, service, settings, caplog):
    settings.WEBHOOK_CA_FILE = ""
    egress.tls_context.cache_clear()
    suspend(service)
    delivery.attempt(Delivery.objects.get().pk)
    # The tenant reads the one wording; the operator's log says why.
    assert Attempt.objects.get().error.startswith("cannot connect to 127.0.0.1")
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert hook_receiver.received == []


def test_two_workers_never_send_one_delivery_at_once(hook, hook_receiver, service):
    suspend(service)
    d = Delivery.objects.get()
    assert delivery.claim(d.pk)
    assert delivery.attempt(d.pk) is None  # claimed by the other: nothing sent
    assert hook_receiver.received == []
    Delivery.objects.filter(pk=d.pk).update(locked_until=timezone.now())  # the other died
    assert delivery.due(grace=0) == [d.pk]


def test_a_webhook_deleted_mid_attempt_ends_it_quietly(hook, hook_receiver, service, monkeypatch):
    suspend(service)
    d = Delivery.objects.get()
    real_post = delivery.post

    def post_then_delete(*args, **kwargs):
        outcome = real_post(*args, **kwargs)
        Webhook.objects.filter(pk=hook.pk).delete()
        return outcome

    monkeypatch.setattr(delivery, "post", post_then_delete)
    assert delivery.attempt(d.pk) is None
    assert not Attempt.objects.exists()


def test_the_sweep_sends_what_is_due_and_forgets_old_events(
    hook, hook_receiver, service, settings, monkeypatch
):
    from webhooks import tasks

    suspend(service)
    d = Delivery.objects.get()
    Delivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=1))
    sent = []
    monkeypatch.setattr(tasks, "enqueue", lambda pk, countdown=None: sent.append(pk))
    assert tasks.sweep() == 1
    assert sent == [d.pk]

    settings.WEBHOOK_EVENT_RETENTION_DAYS = 30
    Event.objects.update(created_at=timezone.now() - timedelta(days=31))
    tasks.sweep()
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_an_event_that_cannot_be_written_never_stops_the_change(hook, service, monkeypatch, caplog):
    from webhooks import events

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(events, "record", broken)
    assert suspend(service) == 1
    service.refresh_from_db()
    assert service.suspended
    assert not Event.objects.exists()
    assert "could not record the event" in caplog.text


def test_a_busy_worker_leaves_the_delivery_to_the_sweep(hook, hook_receiver, service):
    from webhooks import tasks

    suspend(service)
    d = Delivery.objects.get()
    slots = tasks.slots()
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    try:
        tasks.deliver(d.pk)  # waits 2 s for a slot, then leaves it due
    finally:
        for _ in range(taken):
            slots.release()
    assert hook_receiver.received == []
    assert Delivery.objects.get().state == DeliveryState.PENDING
    tasks.deliver(d.pk)
    assert len(hook_receiver.received) == 1


def test_one_sender_drains_a_burst_to_its_webhook_in_order(hook, hook_receiver, service):
    for i in range(10):
        suspend(service, i % 2 == 0)
    first = Delivery.objects.order_by("pk").first()
    assert delivery.deliver(first.pk) == []
    assert [r.payload["type"] for r in hook_receiver.received] == [
        "service_suspended",
        "service_resumed",
    ] * 5
    assert not Delivery.objects.exclude(state=DeliveryState.DELIVERED).exists()
    assert Webhook.objects.get().sending_until is None  # the lease is given back


def test_a_webhook_another_worker_sends_to_is_left_to_it(hook, hook_receiver, service):
    suspend(service)
    d = Delivery.objects.get()
    assert delivery.lease(hook.pk)  # the other worker
    assert delivery.deliver(d.pk) == []
    assert hook_receiver.received == []
    Webhook.objects.filter(pk=hook.pk).update(sending_until=timezone.now())  # it died
    assert delivery.due(grace=0) == [d.pk]
    delivery.deliver(d.pk)
    assert len(hook_receiver.received) == 1


@pytest.mark.django_db(transaction=True)
def test_a_slow_receiver_holds_one_thread_and_never_delays_another_webhook(
    workspace, service, pki, webhook_settings
):
    from tests.helpers import Background
    from webhooks import tasks

    webhook_settings.WEBHOOK_TIMEOUT = 5.0
    slow = HttpsReceiver(pki.server_pem, delay=3).start()
    fast = HttpsReceiver(pki.server_pem).start()
    try:
        Webhook.objects.create(workspace=workspace, name="slow", url=slow.url)
        Webhook.objects.create(workspace=workspace, name="fast", url=fast.url)
        suspend(service)
        suspend(service, False)  # two events for each webhook
        slow_ids = list(
            Delivery.objects.filter(webhook__name="slow")
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        fast_id = Delivery.objects.filter(webhook__name="fast").order_by("pk").first().pk
        sender = Background(tasks.deliver, slow_ids[0])
        sender.start()
        slow.wait_for(1, timeout=5)
        started = time.monotonic()
        tasks.deliver(slow_ids[1])  # its webhook is being sent to: returns at once
        tasks.deliver(fast_id)  # another webhook: not held up (and drains its second event)
        assert time.monotonic() - started < 1.5
        assert len(fast.received) == 2
        sender.finish(timeout=20)
        assert len(slow.received) == 2  # the slow one's sender went on with its second event
    finally:
        slow.stop()
        fast.stop()


@pytest.mark.django_db(transaction=True)
def test_a_webhook_deleted_while_an_attempt_is_in_flight(workspace, service, pki, webhook_settings):
    from tests.helpers import Background
    from webhooks import hooks

    slow = HttpsReceiver(pki.server_pem, delay=1).start()
    try:
        webhook = Webhook.objects.create(workspace=workspace, name="slow", url=slow.url)
        suspend(service)
        sender = Background(delivery.deliver, Delivery.objects.get().pk)
        sender.start()
        slow.wait_for(1, timeout=5)
        hooks.delete_webhook(webhook)
        assert sender.finish(timeout=10) == []
        assert not Webhook.objects.exists()
        assert not Delivery.objects.exists()
        assert not Attempt.objects.exists()
    finally:
        slow.stop()

"""The forwarder against a real TLS syslog receiver on 127.0.0.1, on the real database: lines
are stored the way the runner stores them (lines and the job's count in one transaction, then
``lines_stored``), and the forwarder sends them from the table, after each job's cursor."""

import datetime
import time

import pytest

from jobs.logs import retention
from jobs.models import Job
from logstreams import forward as logstreams
from logstreams.models import LogCursor, LogDestination, ServiceLogStream, WorkspaceLogStream
from logstreams.streams import owner_stream_dict, send_test_line
from tests.helpers import Receiver, no_answer, wait_for
from tests.logstreams.conftest import store

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def seqs(messages, job=None):
    return [int(m.params["seq"]) for m in messages if job is None or m.procid == job.id]


@pytest.fixture
def stream(workspace, receiver):
    return WorkspaceLogStream.objects.create(
        workspace=workspace, endpoint=receiver.endpoint, token='tok-s3cr"et]'
    )


def test_it_delivers_every_line_as_rfc5424_with_identity_and_token(
    forwarding, stream, receiver, workspace, make_service, make_job
):
    service = make_service(name="Billing Worker")
    job = make_job(service)
    batch = store(job, 100, text='héllo "quoted" [x] line {seq}')
    batch += store(job, 200, text='héllo "quoted" [x] line {seq}')

    messages = receiver.wait_for(300)
    assert len(messages) == 300
    for line, message in zip(batch, messages, strict=True):
        assert message.msg == line.text
        assert message.timestamp == line.timestamp
        assert message.facility == 1
        assert message.severity == (3 if line.stream == 2 else 6)
        assert message.hostname == "billing-worker"
        assert message.app == service.id
        assert message.procid == job.id
        assert message.params == {
            "token": 'tok-s3cr"et]',
            "workspace": workspace.id,
            "service": service.id,
            "job": job.id,
            "seq": str(line.seq),
            "stream": "stderr" if line.stream == 2 else "stdout",
        }
    wait_for(lambda: LogCursor.objects.filter(job=job, next_seq=300).exists(), 5)


def test_a_receiver_down_then_up_gets_every_line_in_order(
    forwarding, stream, receiver, make_service, make_job
):
    job = make_job(make_service())
    other = make_job(make_service(name="other"))
    store(job, 5)
    assert len(receiver.wait_for(5)) == 5

    receiver.stop()
    time.sleep(0.2)  # let the sender see the connection close
    started = time.monotonic()
    for _ in range(6):  # 120 lines of each job while the destination is down
        store(job, 20)
        store(other, 20)
    assert time.monotonic() - started < 2, "forwarding must never hold up the job"
    destination = forwarding.destinations()[0]
    wait_for(lambda: destination.last_error == no_answer("127.0.0.1"), 10)

    receiver.start()  # back on the same port
    wait_for(lambda: len(receiver.messages) >= 245, 15)
    time.sleep(0.3)
    assert seqs(receiver.messages, job) == list(range(125))
    assert seqs(receiver.messages, other) == list(range(120))

    forwarding.stats.maybe_flush(force=True)
    wait_for(lambda: WorkspaceLogStream.objects.get(pk=stream.pk).last_delivered_at, 5)
    stream.refresh_from_db()
    assert stream.dropped_lines == 0
    assert stream.last_error == no_answer("127.0.0.1")
    assert stream.last_error_at is not None


def test_a_restart_mid_stream_loses_nothing(
    fresh_forwarder, stream, receiver, make_service, make_job
):
    job = make_job(make_service())
    fresh_forwarder.start()
    store(job, 20_000)
    wait_for(lambda: receiver.messages, 10)
    fresh_forwarder.shutdown(timeout=5)  # mid-stream
    store(job, 10_000)  # stored while no forwarder runs
    sent = len(receiver.messages)
    assert sent < 30_000

    logstreams.forwarder = restarted = logstreams.Forwarder()
    restarted.start()
    try:
        wait_for(lambda: len(receiver.messages) >= 30_000, 30)
        time.sleep(0.3)
        delivered = seqs(receiver.messages)
        # At least once: all of them, in order, and (the first one stopped cleanly) once each.
        assert delivered == list(range(30_000))
    finally:
        restarted.shutdown(timeout=2)


def test_a_fast_receiver_gets_every_line_of_a_big_job(
    forwarding, stream, receiver, make_service, make_job
):
    job = make_job(make_service())
    for _ in range(40):  # 200,000 lines, as the runner stores them (5,000 at a time)
        store(job, 5000)
    Job.objects.filter(pk=job.pk).update(status="succeeded", finished_at=job.created_at)
    wait_for(lambda: len(receiver.messages) >= 200_000, 120, interval=0.2)
    time.sleep(0.3)
    assert seqs(receiver.messages) == list(range(200_000))
    wait_for(lambda: LogCursor.objects.filter(job=job, done=True).exists(), 10)
    forwarding.stats.maybe_flush(force=True)
    assert WorkspaceLogStream.objects.get(pk=stream.pk).dropped_lines == 0


def test_lines_purged_while_the_receiver_was_down_are_counted(
    forwarding, stream, receiver, workspace, make_service, make_job
):
    now = datetime.datetime.now(datetime.UTC)
    old = now - datetime.timedelta(days=workspace.log_retention_days, hours=1)
    receiver.stop()
    job = make_job(make_service(), created_at=old - datetime.timedelta(minutes=1))
    stream.created_at = old - datetime.timedelta(hours=1)
    stream.save()
    store(job, 30, at=old)  # expired already: the receiver stays down past its retention
    store(job, 10)
    destination = wait_for(forwarding.destinations, 5)[0]
    wait_for(lambda: destination.last_error, 10)
    assert retention.purge_expired_logs().job_lines == 30

    receiver.start()
    wait_for(lambda: len(receiver.messages) >= 10, 10)
    time.sleep(0.3)
    assert seqs(receiver.messages) == list(range(30, 40))

    def counted():
        forwarding.stats.maybe_flush(force=True)
        return WorkspaceLogStream.objects.get(pk=stream.pk).dropped_lines == 30

    wait_for(counted, 5, message="the purged lines to be counted")
    shown = owner_stream_dict(WorkspaceLogStream.objects.get(pk=stream.pk))  # API and page
    assert shown["droppedLines"] == 30


def test_one_process_at_a_time_sends_to_a_destination(
    forwarding, stream, receiver, make_service, make_job
):
    second = logstreams.Forwarder()  # another worker process
    second.start()
    try:
        job = make_job(make_service())
        for _ in range(10):
            store(job, 2000)
            second.wake()
        wait_for(lambda: len(receiver.messages) >= 20_000, 30)
        time.sleep(0.5)
        assert seqs(receiver.messages) == list(range(20_000))  # none twice
        (lease,) = LogDestination.objects.all()
        assert lease.endpoint == stream.endpoint
        assert lease.holder in (forwarding.identity, second.identity)
    finally:
        second.shutdown(timeout=2)


def test_a_job_created_before_the_stream_is_not_forwarded(
    forwarding, workspace, receiver, make_service, make_job
):
    service = make_service()
    before = make_job(service)
    store(before, 3)
    WorkspaceLogStream.objects.create(workspace=workspace, endpoint=receiver.endpoint)
    after = make_job(service)
    store(before, 3)
    store(after, 2)
    assert [m.procid for m in receiver.wait_for(2)] == [after.id] * 2
    time.sleep(1.5)
    assert len(receiver.messages) == 2


def test_it_refuses_a_certificate_it_does_not_trust(
    forwarding, pki, workspace, make_service, make_job, caplog
):
    rogue = Receiver(pki.rogue_pem).start()
    try:
        stream = WorkspaceLogStream.objects.create(workspace=workspace, endpoint=rogue.endpoint)
        job = make_job(make_service())
        store(job, 10)

        destination = wait_for(forwarding.destinations, 5)[0]
        wait_for(lambda: destination.last_error, 10)
        # The workspace reads the one wording; the operator's log says what happened.
        assert destination.last_error == no_answer("127.0.0.1")
        assert f"TLS certificate of {rogue.endpoint} was refused" in caplog.text
        time.sleep(0.2)
        assert rogue.messages == []
        assert rogue.handshake_failures >= 1
        # Kept for when the certificate is fixed.
        assert not LogCursor.objects.filter(job=job, next_seq__gt=0).exists()

        forwarding.stats.maybe_flush(force=True)
        stream.refresh_from_db()
        assert stream.last_error == no_answer("127.0.0.1")
    finally:
        rogue.stop()


def test_it_verifies_certificates_by_default(
    forwarding, stream_settings, stream, receiver, make_service, make_job, caplog
):
    stream_settings.LOG_STREAM_CA_FILE = ""  # only the system store: the test CA is unknown
    store(make_job(make_service()), 3)
    destination = wait_for(forwarding.destinations, 5)[0]
    wait_for(lambda: destination.last_error == no_answer("127.0.0.1"), 10)
    assert "TLS certificate of 127.0.0.1" in caplog.text
    assert receiver.messages == []


def test_it_sends_nothing_for_a_service_set_to_drop(
    forwarding, stream, receiver, make_service, make_job
):
    dropped = make_service(name="quiet")
    ServiceLogStream.objects.create(service=dropped, setting="drop")
    sent = make_service(name="loud")

    store(make_job(dropped), 20, text="secret {seq}")
    store(make_job(sent), 3)

    messages = receiver.wait_for(3)
    time.sleep(1.5)
    assert [m.hostname for m in receiver.messages] == ["loud"] * 3
    assert forwarding.destinations()[0].dropped == 0
    assert len(messages) == 3


def test_it_sends_to_a_service_custom_destination_with_its_token(
    forwarding, pki, stream, receiver, make_service, make_job
):
    other = Receiver(pki.server_pem).start()
    try:
        custom = make_service(name="custom")
        ServiceLogStream.objects.create(
            service=custom, setting="send", endpoint=f"localhost:{other.port}", token="own"
        )
        store(make_job(custom), 4)
        store(make_job(make_service(name="default")), 2)

        assert [m.params["token"] for m in other.wait_for(4)] == ["own"] * 4
        assert [m.hostname for m in receiver.wait_for(2)] == ["default"] * 2
        time.sleep(0.1)
        assert len(other.messages) == 4
        assert len(receiver.messages) == 2
    finally:
        other.stop()


def test_it_sends_nothing_while_the_workspace_stream_is_paused(
    forwarding, stream, receiver, make_service, make_job
):
    stream.enabled = False
    stream.save()
    job = make_job(make_service())
    assert forwarding.route_of_job(job.id) is None
    store(job, 5)
    time.sleep(1.5)
    assert forwarding.destinations() == []
    # Skipped, not held back for when it is resumed.
    assert LogCursor.objects.get(job=job).next_seq == 5


def test_a_settings_change_applies_at_once(
    fresh_forwarder, stream, receiver, make_service, make_job
):
    service = make_service()
    job = make_job(service)
    assert fresh_forwarder.route_of_job(job.id) is not None
    ServiceLogStream.objects.create(service=service, setting="drop")
    assert fresh_forwarder.route_of_job(job.id) is None


def test_the_hint_never_raises_into_the_runner(fresh_forwarder, stream, make_service, make_job):
    logstreams.lines_stored_here(make_job(make_service()).id)


def test_the_test_line_reaches_the_receiver(stream_settings, receiver, workspace):
    assert send_test_line(receiver.endpoint, "tok", workspace.id) is None
    (message,) = receiver.wait_for(1)
    assert message.params == {"token": "tok", "workspace": workspace.id, "stream": "stdout"}
    assert message.msg.startswith("Test line from Oneoff")


def test_the_test_line_reports_a_bad_certificate_and_a_closed_port_alike(
    stream_settings, pki, caplog
):
    rogue = Receiver(pki.rogue_pem).start()
    try:
        error = send_test_line(rogue.endpoint, "", "tea-x")
    finally:
        rogue.stop()
    assert error == no_answer("127.0.0.1")
    assert send_test_line(rogue.endpoint, "", "tea-x") == no_answer("127.0.0.1")
    # The operator's log tells them apart.
    assert f"TLS certificate of {rogue.endpoint} was refused" in caplog.text
    assert f"{rogue.endpoint} refused the connection" in caplog.text


def test_a_bad_ca_file_setting_is_named_in_the_error(stream_settings, receiver, tmp_path):
    stream_settings.LOG_STREAM_CA_FILE = str(tmp_path / "missing.pem")
    error = send_test_line(receiver.endpoint, "", "tea-x")
    assert "LOG_STREAM_CA_FILE" in error
    assert "missing.pem" in error

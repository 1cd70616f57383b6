"""The forwarder against a real TLS syslog receiver on 127.0.0.1, fed the way the runner feeds it
(``forward_batch(job_id, lines)`` after each stored batch)."""

import time

import pytest

from logstreams import forward as logstreams
from logstreams import transport
from logstreams.models import ServiceLogStream, WorkspaceLogStream
from logstreams.streams import send_test_line
from tests.helpers import Receiver, lines, no_answer

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def stream(workspace, receiver):
    return WorkspaceLogStream.objects.create(
        workspace=workspace, endpoint=receiver.endpoint, token='tok-s3cr"et]'
    )


def test_it_delivers_every_line_as_rfc5424_with_identity_and_token(
    fresh_forwarder, stream, receiver, workspace, make_service, make_job
):
    service = make_service(name="Billing Worker")
    job = make_job(service)
    batch = lines(300, text='héllo "quoted" [x] line {seq}')

    logstreams.forward_batch(job.id, batch[:100])
    logstreams.forward_batch(job.id, batch[100:])

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


def test_it_buffers_while_the_destination_is_down_and_counts_what_did_not_fit(
    fresh_forwarder, stream_settings, stream, receiver, make_service, make_job
):
    stream_settings.LOG_STREAM_BUFFER_LINES = 50
    job = make_job(make_service())
    logstreams.forward_batch(job.id, lines(5))
    assert len(receiver.wait_for(5)) == 5

    receiver.stop()
    time.sleep(0.2)  # let the sender see the connection close
    started = time.monotonic()
    for start in range(6, 126, 20):  # 120 lines in batches while the destination is down
        logstreams.forward_batch(job.id, lines(20, start=start))
    assert time.monotonic() - started < 0.5, "forwarding must never hold up the job"

    destination = fresh_forwarder.destinations()[0]
    assert destination.dropped == 70
    wait_until(lambda: destination.last_error == no_answer("127.0.0.1"))

    receiver.start()  # back on the same port
    messages = receiver.wait_for(55)
    assert [int(m.params["seq"]) for m in messages] == list(range(1, 6)) + list(range(6, 56))
    time.sleep(0.3)
    assert len(receiver.messages) == 55

    fresh_forwarder.stats.maybe_flush(force=True)
    wait_until(lambda: WorkspaceLogStream.objects.get(pk=stream.pk).last_delivered_at)
    stream.refresh_from_db()
    assert stream.dropped_lines == 70
    assert stream.last_error == no_answer("127.0.0.1")
    assert stream.last_error_at is not None


def test_it_refuses_a_certificate_it_does_not_trust(
    fresh_forwarder, pki, workspace, make_service, make_job, caplog
):
    rogue = Receiver(pki.rogue_pem).start()
    try:
        stream = WorkspaceLogStream.objects.create(workspace=workspace, endpoint=rogue.endpoint)
        job = make_job(make_service())
        logstreams.forward_batch(job.id, lines(10))

        destination = fresh_forwarder.destinations()[0]
        wait_until(lambda: destination.last_error)
        # The workspace reads the one wording; the operator's log says what happened.
        assert destination.last_error == no_answer("127.0.0.1")
        assert f"TLS certificate of {rogue.endpoint} was refused" in caplog.text
        time.sleep(0.2)
        assert rogue.messages == []
        assert rogue.handshake_failures >= 1
        assert destination.pending() == 10  # kept for when the certificate is fixed

        fresh_forwarder.stats.maybe_flush(force=True)
        stream.refresh_from_db()
        assert stream.last_error == no_answer("127.0.0.1")
    finally:
        rogue.stop()


def test_it_verifies_certificates_by_default(
    fresh_forwarder, stream_settings, stream, receiver, make_service, make_job, caplog
):
    stream_settings.LOG_STREAM_CA_FILE = ""  # only the system store: the test CA is unknown
    logstreams.forward_batch(make_job(make_service()).id, lines(3))
    destination = fresh_forwarder.destinations()[0]
    wait_until(lambda: destination.last_error == no_answer("127.0.0.1"))
    assert "TLS certificate of 127.0.0.1" in caplog.text
    assert receiver.messages == []


def test_it_sends_nothing_for_a_service_set_to_drop(
    fresh_forwarder, stream, receiver, make_service, make_job
):
    dropped = make_service(name="quiet")
    ServiceLogStream.objects.create(service=dropped, setting="drop")
    sent = make_service(name="loud")

    logstreams.forward_batch(make_job(dropped).id, lines(20, text="secret {seq}"))
    logstreams.forward_batch(make_job(sent).id, lines(3))

    messages = receiver.wait_for(3)
    time.sleep(0.2)
    assert [m.hostname for m in receiver.messages] == ["loud"] * 3
    assert fresh_forwarder.destinations()[0].dropped == 0
    assert len(messages) == 3


def test_it_sends_to_a_service_custom_destination_with_its_token(
    fresh_forwarder, pki, stream, receiver, make_service, make_job
):
    other = Receiver(pki.server_pem).start()
    try:
        custom = make_service(name="custom")
        ServiceLogStream.objects.create(
            service=custom, setting="send", endpoint=f"localhost:{other.port}", token="own"
        )
        logstreams.forward_batch(make_job(custom).id, lines(4))
        logstreams.forward_batch(make_job(make_service(name="default")).id, lines(2))

        assert [m.params["token"] for m in other.wait_for(4)] == ["own"] * 4
        assert [m.hostname for m in receiver.wait_for(2)] == ["default"] * 2
        time.sleep(0.1)
        assert len(other.messages) == 4
        assert len(receiver.messages) == 2
    finally:
        other.stop()


def test_it_sends_nothing_while_the_workspace_stream_is_paused(
    fresh_forwarder, stream, receiver, make_service, make_job
):
    stream.enabled = False
    stream.save()
    assert logstreams.forwarder.route_for(make_job(make_service()).id) is None
    logstreams.forward_batch(make_job(make_service()).id, lines(5))
    assert fresh_forwarder.destinations() == []


def test_a_settings_change_applies_at_once(
    fresh_forwarder, stream, receiver, make_service, make_job
):
    service = make_service()
    job = make_job(service)
    assert fresh_forwarder.route_for(job.id) is not None
    ServiceLogStream.objects.create(service=service, setting="drop")
    assert fresh_forwarder.route_for(job.id) is None


def test_it_never_raises_into_the_runner(fresh_forwarder, stream, make_service, make_job):
    job = make_job(make_service())
    logstreams.forward_batch(job.id, [object()])  # nonsense from a buggy caller: logged, not raised


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


def test_an_idle_destination_is_forgotten_and_what_it_held_is_counted(
    fresh_forwarder, monkeypatch, workspace, receiver, make_service, make_job
):
    down = Receiver(receiver.cert_pem).start()
    down.stop()  # nothing listens there
    stream = WorkspaceLogStream.objects.create(workspace=workspace, endpoint=down.endpoint)
    job = make_job(make_service())
    monkeypatch.setattr(transport, "IDLE_SECONDS", 0.5)
    logstreams.forward_batch(job.id, lines(7))
    wait_until(lambda: fresh_forwarder.destinations() == [])
    wait_until(lambda: WorkspaceLogStream.objects.get(pk=stream.pk).dropped_lines == 7)

    # The settings moved to a working receiver: lines flow through a fresh destination.
    stream.endpoint = receiver.endpoint
    stream.save()
    logstreams.forward_batch(job.id, lines(3, start=8))
    assert [m.params["seq"] for m in receiver.wait_for(3)] == ["8", "9", "10"]


def test_a_bad_ca_file_setting_is_named_in_the_error(stream_settings, receiver, tmp_path):
    stream_settings.LOG_STREAM_CA_FILE = str(tmp_path / "missing.pem")
    error = send_test_line(receiver.endpoint, "", "tea-x")
    assert "LOG_STREAM_CA_FILE" in error
    assert "missing.pem" in error

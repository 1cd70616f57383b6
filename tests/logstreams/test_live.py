"""Real jobs (a Celery worker subprocess, Docker, PostgreSQL) streaming to a real TLS receiver."""

import tempfile
import time
from pathlib import Path

import pytest

from jobs.launch import create_job
from jobs.models import JobStatus
from logstreams.models import ServiceLogStream, WorkspaceLogStream
from tests.helpers import Receiver, make_pki, no_answer, wait_finished, wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# The worker subprocess trusts this module's test CA.
PKI = make_pki(Path(tempfile.mkdtemp(prefix="oneoff-pki-")))
WORKER_ENV = {"LOG_STREAM_CA_FILE": PKI.ca_file, "LOG_STREAM_RETRY_MAX": "0.3"}


@pytest.fixture
def live_receiver():
    server = Receiver(PKI.server_pem).start()
    yield server
    server.stop()
    assert not server.errors, server.errors


def stored(job):
    return list(job.log_lines.order_by("seq").values_list("seq", "timestamp", "stream", "text"))


def test_every_line_of_a_job_arrives_framed_with_the_token(
    live_worker, live_receiver, job_service, workspace, owner
):
    WorkspaceLogStream.objects.create(
        workspace=workspace, endpoint=live_receiver.endpoint, token="tok-123"
    )
    job = create_job(
        job_service,
        'i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo "out $i"; echo "err $i" >&2; done',
        user=owner,
    )
    wait_finished(job)
    assert job.status == JobStatus.SUCCEEDED
    lines = stored(job)
    assert len(lines) == 800

    messages = live_receiver.wait_for(800, timeout=15)
    assert len(messages) == 800
    by_seq = {int(m.params["seq"]): m for m in messages}
    assert sorted(by_seq) == [seq for seq, *_ in lines]
    for seq, timestamp, stream, text in lines:
        message = by_seq[seq]
        assert message.msg == text
        assert message.timestamp == timestamp
        assert message.severity == (3 if stream == 2 else 6)
        assert message.params["stream"] == ("stderr" if stream == 2 else "stdout")
        assert message.params["token"] == "tok-123"
        assert message.params["job"] == job.id == message.procid
        assert message.params["workspace"] == workspace.id
        assert message.app == job_service.id
        assert message.hostname == "runner"


def test_down_then_back_the_job_is_not_held_up_and_every_line_arrives(
    live_worker, job_service, workspace, owner
):
    receiver = Receiver(PKI.server_pem).start()
    receiver.stop()  # a port where nothing listens, for now
    stream = WorkspaceLogStream.objects.create(workspace=workspace, endpoint=receiver.endpoint)
    try:
        job = create_job(job_service, "seq 1 3000", user=owner)
        wait_finished(job)
        assert job.status == JobStatus.SUCCEEDED
        assert (job.finished_at - job.started_at).total_seconds() < 5
        assert len(stored(job)) == 3000

        def failing():
            stream.refresh_from_db()
            return stream.last_error == no_answer("127.0.0.1")

        wait_for(failing, 10, message="the error to be recorded")

        receiver.start()  # back, on the same port
        messages = receiver.wait_for(3000, timeout=15)
        time.sleep(0.3)
        assert [m.msg for m in receiver.messages] == [str(n) for n in range(1, 3001)]
        assert len(messages) == 3000
        wait_for(lambda: WorkspaceLogStream.objects.get(pk=stream.pk).last_delivered_at, 10)
        assert WorkspaceLogStream.objects.get(pk=stream.pk).dropped_lines == 0
    finally:
        receiver.stop()


def test_a_worker_killed_mid_stream_loses_no_line(
    live_worker, live_receiver, job_service, workspace, owner
):
    WorkspaceLogStream.objects.create(workspace=workspace, endpoint=live_receiver.endpoint)
    job = create_job(
        job_service,
        "i=0; while [ $i -lt 40 ]; do i=$((i+1)); seq $((i*1000-999)) $((i*1000)); sleep 0.1; done",
        user=owner,
    )
    wait_for(lambda: len(live_receiver.messages) > 1000, 20, message="lines to flow")
    live_worker.kill()  # SIGKILL: no cleanup, its destination lease lapses by itself
    live_worker.start()
    wait_finished(job, timeout=60)
    assert job.status == JobStatus.SUCCEEDED
    assert len(stored(job)) == 40_000
    wait_for(lambda: len(live_receiver.messages) >= 40_000, 60, message="every line")
    time.sleep(0.3)
    # At least once, in order: a stretch sent again only where the worker died mid-send.
    received = [int(m.msg) for m in live_receiver.messages]
    assert set(received) == set(range(1, 40_001))
    assert len(received) - 40_000 <= 5000


def test_a_service_set_to_drop_sends_nothing(
    live_worker, live_receiver, job_service, busybox_build, make_service, workspace, owner
):
    WorkspaceLogStream.objects.create(workspace=workspace, endpoint=live_receiver.endpoint)
    ServiceLogStream.objects.create(service=job_service, setting="drop")
    other = make_service(name="other")
    busybox_build(other)

    dropped = create_job(job_service, "echo dropped-1; echo dropped-2", user=owner)
    wait_finished(dropped)
    sent = create_job(other, "echo sent", user=owner)
    wait_finished(sent)

    assert [m.msg for m in live_receiver.wait_for(1)] == ["sent"]
    time.sleep(0.5)
    assert [m.msg for m in live_receiver.messages] == ["sent"]


def test_a_bad_certificate_is_refused(live_worker, job_service, workspace, owner):
    rogue = Receiver(PKI.rogue_pem).start()
    try:
        stream = WorkspaceLogStream.objects.create(workspace=workspace, endpoint=rogue.endpoint)
        job = create_job(job_service, "echo secret output", user=owner)
        wait_finished(job)

        def refused():
            stream.refresh_from_db()
            return stream.last_error == no_answer("127.0.0.1")

        wait_for(refused, 10, message="the error to be recorded")
        assert f"TLS certificate of {rogue.endpoint} was refused" in live_worker.tail()
        assert rogue.messages == []
        assert rogue.handshake_failures >= 1
    finally:
        rogue.stop()

"""Egress rules for log streams (issue 13, point 6), against real TLS receivers and sockets on
127.0.0.1: a workspace admin must not point the forwarder, or the test line, at the server's own
network, nor tell a refused port from a silent or a TLS one by the errors."""

import time

import pytest
from django.core.cache import cache

from logstreams.models import ServiceLogStream, WorkspaceLogStream
from logstreams.streams import send_test_line
from services.models import ApiKey
from tests.helpers import (
    ApiClient,
    Listener,
    Receiver,
    assert_error,
    closed_port,
    no_answer,
    wait_for,
)
from tests.logstreams.conftest import store

# (endpoint, the host its error names); {port} is a live receiver's.
FORBIDDEN = [
    ("127.0.0.1:{port}", "127.0.0.1"),
    ("localhost:{port}", "localhost"),
    ("[::1]:{port}", "::1"),
    ("[::ffff:127.0.0.1]:{port}", "::ffff:127.0.0.1"),
    ("169.254.169.254:{port}", "169.254.169.254"),
    ("10.0.0.1:{port}", "10.0.0.1"),
]


@pytest.fixture
def default_rules(settings):
    """EGRESS_ALLOW as shipped: empty."""
    settings.EGRESS_ALLOW = []
    return settings


@pytest.fixture(autouse=True)
def _clear_rate_limits():
    cache.clear()


@pytest.fixture
def owner_api(owner, workspace):
    key, secret = ApiKey.issue(owner, workspace)
    return ApiClient(secret, key)


# Setting a destination: the API and the page.


@pytest.mark.django_db
@pytest.mark.parametrize(("form", "host"), FORBIDDEN)
def test_the_api_refuses_a_forbidden_destination(
    default_rules, owner_api, workspace, service, receiver, form, host
):
    endpoint = form.format(port=receiver.port)
    owner = f"/v1/logs/streams/owner/{workspace.id}"
    resource = f"/v1/logs/streams/resource/{service.id}"

    for url, body in [
        (owner, {"endpoint": endpoint, "preview": "send"}),
        (resource, {"setting": "send", "endpoint": endpoint}),
    ]:
        error = assert_error(owner_api.put(url, body), 400, field="endpoint")
        assert error["message"] == f"endpoint: {no_answer(host)}"

    assert not WorkspaceLogStream.objects.exclude(endpoint="").exists()
    assert not ServiceLogStream.objects.exists()


@pytest.mark.django_db
def test_the_api_refuses_moving_a_destination_to_a_forbidden_one(
    default_rules, owner_api, workspace, receiver
):
    WorkspaceLogStream.objects.create(workspace=workspace, endpoint="93.184.216.34:6514")
    url = f"/v1/logs/streams/owner/{workspace.id}"
    body = {"endpoint": f"localhost:{receiver.port}", "token": "t", "preview": "send"}

    error = assert_error(owner_api.put(url, body), 400, field="endpoint")

    assert error["message"] == f"endpoint: {no_answer('localhost')}"
    assert WorkspaceLogStream.objects.get(workspace=workspace).endpoint == "93.184.216.34:6514"
    # The stream itself can still be paused: only a new endpoint is checked.
    assert owner_api.put(url, {"preview": "send", "enabled": False}).status_code == 200


@pytest.mark.django_db
def test_the_page_refuses_a_forbidden_destination(
    default_rules, client, owner, workspace, service, receiver
):
    client.force_login(owner)
    page = f"/settings/log-stream/?workspace={workspace.id}"
    response = client.post(page, {"endpoint": receiver.endpoint, "preview": "send"})
    assert response.status_code == 400
    assert no_answer("127.0.0.1") in response.content.decode()

    response = client.post(
        f"/settings/log-stream/services/{service.id}/?workspace={workspace.id}",
        {f"{service.id}-setting": "custom", f"{service.id}-endpoint": "169.254.169.254:80"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400
    assert no_answer("169.254.169.254") in response.content.decode()
    assert not WorkspaceLogStream.objects.exclude(endpoint="").exists()
    assert not ServiceLogStream.objects.exists()


# The test line and delivery: nothing reaches a forbidden address, even one stored earlier.


@pytest.mark.django_db
@pytest.mark.parametrize(("form", "host"), FORBIDDEN[:2])
def test_the_test_line_never_reaches_a_forbidden_receiver(
    default_rules, stream_settings, client, owner, workspace, receiver, form, host
):
    endpoint = form.format(port=receiver.port)
    assert send_test_line(endpoint, "tok", workspace.id) == no_answer(host)

    # The button, for a destination stored before the rules (or an allow-list) changed.
    WorkspaceLogStream.objects.create(workspace=workspace, endpoint=endpoint)
    client.force_login(owner)
    response = client.post(f"/settings/log-stream/test/?workspace={workspace.id}")
    assert no_answer(host) in response.content.decode()

    time.sleep(0.2)
    assert receiver.messages == []
    assert receiver.handshake_failures == 0  # not even a connection


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(("form", "host"), [FORBIDDEN[1], FORBIDDEN[4]])
def test_delivery_never_reaches_a_forbidden_receiver(
    default_rules, forwarding, workspace, receiver, make_service, make_job, form, host
):
    endpoint = form.format(port=receiver.port)
    stream = WorkspaceLogStream.objects.create(workspace=workspace, endpoint=endpoint, token="t")

    store(make_job(make_service()), 5)

    destination = wait_for(forwarding.destinations, 5)[0]
    wait_for(lambda: destination.last_error, message="the delivery error")
    assert destination.last_error == no_answer(host)
    forwarding.stats.maybe_flush(force=True)
    stream.refresh_from_db()
    assert stream.last_error == no_answer(host)
    assert receiver.messages == []
    assert receiver.handshake_failures == 0


# Allow-listed loopback (the tests' setting): a refused, a silent, a TLS and a foreign port all
# read alike, and a receiver there works.


@pytest.fixture
def four_ports(pki):
    rogue = Receiver(pki.rogue_pem).start()  # TLS, with a certificate the forwarder refuses
    silent = Listener()
    foreign = Listener(banner=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    yield {
        "refused": closed_port(),
        "silent": silent.port,
        "tls": rogue.port,
        "foreign": foreign.port,
    }
    rogue.stop()
    silent.close()
    foreign.close()


@pytest.mark.django_db
def test_the_test_line_says_the_same_for_every_failure(stream_settings, workspace, four_ports):
    errors = {
        kind: send_test_line(f"localhost:{port}", "", workspace.id, timeout=1.0)
        for kind, port in four_ports.items()
    }
    assert errors == dict.fromkeys(four_ports, no_answer("localhost"))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_delivery_says_the_same_for_every_failure(
    stream_settings, forwarding, workspace, make_service, make_job, four_ports
):
    stream_settings.LOG_STREAM_TIMEOUT = 1.0
    errors = {}
    for kind, port in four_ports.items():
        WorkspaceLogStream.objects.update_or_create(
            workspace=workspace, defaults={"endpoint": f"127.0.0.1:{port}", "last_error": ""}
        )
        forwarding.invalidate()
        store(make_job(make_service()), 2)
        destination = forwarding.destination("127.0.0.1", port)
        wait_for(lambda d=destination: d.last_error, message=f"the {kind} port's error")
        errors[kind] = destination.last_error
    assert errors == dict.fromkeys(four_ports, no_answer("127.0.0.1"))


@pytest.mark.django_db
def test_the_allow_list_opens_one_port_only(stream_settings, workspace, receiver, pki):
    stream_settings.EGRESS_ALLOW = [f"127.0.0.1:{receiver.port}"]
    other = Receiver(pki.server_pem).start()
    try:
        assert send_test_line(receiver.endpoint, "tok", workspace.id) is None
        assert send_test_line(other.endpoint, "tok", workspace.id) == no_answer("127.0.0.1")
    finally:
        other.stop()
    assert len(receiver.wait_for(1)) == 1
    assert other.messages == []

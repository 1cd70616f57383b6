"""The private docker-py (and urllib3) internals that jobs/logs/engine.py uses for speed.

Each test names what the module relies on; when an SDK upgrade removes or changes it, the test
fails with the installed versions in its message instead of the follower silently failing (or
silently falling back to the slow path) in production. The first tests need no engine; the
last ones check the behaviour against the real engine, on one small exited container.
"""

import contextlib
import inspect
import socket

import docker
import pytest
import requests
import urllib3
from docker.api.client import APIClient

from jobs.logs.engine import open_log_stream, raw_chunks
from jobs.logs.parse import FrameParser
from tests.helpers import start_container

VERSIONS = (
    f"docker-py {docker.__version__} (urllib3 {urllib3.__version__}, "
    f"requests {requests.__version__})"
)


@contextlib.contextmanager
def relied_on(what: str):
    """Turn any failure inside into one message naming the SDK versions and the internal."""
    try:
        yield
    except Exception as exc:
        pytest.fail(
            f"{VERSIONS} removed or changed {what}, a private internal that "
            f"jobs/logs/engine.py relies on for speed: {exc!r}. Adapt jobs/logs/engine.py to "
            "the new SDK (or go back to the public APIs) before upgrading.",
            pytrace=False,
        )


def offline_client() -> APIClient:
    """A client of a local engine that never connects (a version given: no version query)."""
    return APIClient(base_url="unix:///var/run/docker.sock", version="1.44")


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("_url", ["self", "pathfmt", "args", "kwargs"]),
        ("_raise_for_status", ["self", "response"]),
        ("_get_raw_response_socket", ["self", "response"]),
        ("_disable_socket_timeout", ["self", "socket"]),
        # update_headers wraps it without functools.wraps: only (url, **kwargs) can be checked.
        ("_get", ["self", "args", "kwargs"]),
    ],
)
def test_the_private_client_methods_exist_with_their_signatures(name, parameters):
    with relied_on(f"APIClient.{name}"):
        signature = inspect.signature(getattr(APIClient, name))
        assert list(signature.parameters) == parameters
        signature.bind(offline_client(), "x")  # each is called with one positional argument


def test_url_builds_a_versioned_quoted_path():
    with relied_on("APIClient._url"):
        url = offline_client()._url("/containers/{0}/logs", "a b")
        assert url == "http+docker://localhost/v1.44/containers/a%20b/logs"


def test_a_local_engines_base_url_is_what_json_file_path_expects():
    with relied_on("APIClient.base_url for a unix socket"):
        assert offline_client().base_url == "http+docker://localhost"


def test_raise_for_status_raises_dockers_errors():
    client = offline_client()
    with relied_on("APIClient._raise_for_status"):
        response = requests.Response()
        response.status_code = 200
        assert client._raise_for_status(response) is None
        response.status_code = 404
        with pytest.raises(docker.errors.NotFound):
            client._raise_for_status(response)


def test_disable_socket_timeout_makes_a_socket_blocking():
    left, right = socket.socketpair()
    try:
        left.settimeout(5)
        with relied_on("APIClient._disable_socket_timeout"):
            offline_client()._disable_socket_timeout(left)
            assert left.gettimeout() is None
    finally:
        left.close()
        right.close()


def test_urllib3s_response_has_what_raw_chunks_reads():
    with relied_on("urllib3.response.HTTPResponse (read1, read_chunked)"):
        assert callable(urllib3.response.HTTPResponse.read1)
        signature = inspect.signature(urllib3.response.HTTPResponse.read_chunked)
        assert "decode_content" in signature.parameters


# --- on the real engine -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exited_container(docker_client, busybox_image, runner_instance):
    container = start_container(
        docker_client, busybox_image, runner_instance, "echo one; echo two >&2; echo three"
    )
    container.wait(timeout=30)
    container.reload()
    yield container
    container.remove(force=True)


@pytest.mark.docker
def test_the_log_stream_takes_the_fast_path(docker_client, exited_container):
    with relied_on("the APIClient internals open_log_stream calls (_get, _url, ...)"):
        response = open_log_stream(docker_client, exited_container.id, None)
    try:
        with relied_on("response.raw._fp.fp (the buffered socket raw_chunks reads)"):
            assert response.raw.chunked
            assert callable(response.raw._fp.fp.read1)
        with relied_on("APIClient._get_raw_response_socket/_disable_socket_timeout"):
            sock = docker_client.api._get_raw_response_socket(response)
            assert getattr(sock, "_sock", sock).gettimeout() is None
        with relied_on("the body raw_chunks reads from response.raw._fp.fp"):
            parser = FrameParser()
            messages = [m for chunk in raw_chunks(response) for m in parser.feed(chunk)]
            # stdout and stderr are two pipes: only each one's order is given.
            assert [payload for _, stream, payload in messages if stream == 1] == [
                b"one\n",
                b"three\n",
            ]
            assert [payload for _, stream, payload in messages if stream == 2] == [b"two\n"]
    finally:
        response.close()


@pytest.mark.docker
def test_an_engine_error_becomes_dockers_error(docker_client):
    with (
        relied_on("APIClient._raise_for_status on the logs endpoint"),
        pytest.raises(docker.errors.NotFound),
    ):
        open_log_stream(docker_client, "oneoff-no-such-container", None, follow=False)


def test_the_create_arguments_helper_takes_the_high_level_arguments():
    """jobs.runner._create builds the engine's create body with the SDK's own helper."""
    from docker.models.containers import _create_container_args

    with relied_on("docker.models.containers._create_container_args"):
        args = _create_container_args(
            {
                "image": "x",
                "command": ["true"],
                "mem_limit": "8m",
                "read_only": True,
                "version": "1.41",
            }
        )
        assert args["image"] == "x"
        assert args["host_config"]["Memory"] == 8 * 1024 * 1024
        assert args["host_config"]["ReadonlyRootfs"] is True


@pytest.mark.docker
def test_a_process_asks_an_engine_its_api_version_once(monkeypatch):
    """Every follower, exit waiter and stopper makes a client: only the first asks the engine
    for its API version (a GET /version each otherwise)."""
    from jobs import runner

    asked = []
    real = APIClient._retrieve_server_version

    def counted(self):
        asked.append(self.base_url)
        return real(self)

    monkeypatch.setattr(APIClient, "_retrieve_server_version", counted)
    monkeypatch.setattr(runner, "_api_versions", {})
    clients = [runner.new_client() for _ in range(3)]
    try:
        assert len(asked) == 1
        assert {c.api.api_version for c in clients} == {clients[0].version()["ApiVersion"]}
        assert clients[2].ping()
    finally:
        for client in clients:
            client.close()

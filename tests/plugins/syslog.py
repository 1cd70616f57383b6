"""A TLS syslog receiver to forward job logs to, and the settings that make the forwarder trust
it (see ``Receiver`` and ``make_pki`` in tests/helpers.py)."""

import pytest

from tests.helpers import Pki, Receiver, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def stream_settings(settings, pki):
    settings.LOG_STREAM_CA_FILE = pki.ca_file
    settings.LOG_STREAM_RETRY_MAX = 0.3
    settings.LOG_STREAM_TIMEOUT = 3.0
    return settings


@pytest.fixture
def receiver(pki):
    server = Receiver(pki.server_pem).start()
    yield server
    server.stop()
    assert not server.errors, server.errors

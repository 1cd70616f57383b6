"""A real TLS syslog receiver (RFC 5425 framing, RFC 5424 parsing) with certificates made here.

Everything listens on 127.0.0.1: this machine allows no other traffic.
"""

import contextlib
import datetime
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from logstreams import forward as logstreams
from logstreams.syslog import ENTERPRISE_ID
from tests.jobs.conftest import (  # noqa: F401  (the runner's fixtures, for test_live)
    busybox_build,
    job_service,
    live_worker,
    runner_instance,
)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str = "Oneoff test CA"):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(ca_key, ca_cert, hosts=("127.0.0.1", "localhost")):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def write_pem(path, cert, key=None):
    data = cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)
    return str(path)


@dataclass
class Pki:
    ca_file: str  # trusted by the forwarder (LOG_STREAM_CA_FILE)
    server_pem: str  # certificate + key signed by that CA, for 127.0.0.1 and localhost
    rogue_pem: str  # certificate + key for 127.0.0.1 signed by another, untrusted CA


def make_pki(folder) -> Pki:
    ca_key, ca_cert = make_ca()
    key, cert = make_server_cert(ca_key, ca_cert)
    rogue_ca_key, rogue_ca_cert = make_ca("Rogue CA")
    rogue_key, rogue_cert = make_server_cert(rogue_ca_key, rogue_ca_cert)
    return Pki(
        ca_file=write_pem(folder / "ca.pem", ca_cert),
        server_pem=write_pem(folder / "server.pem", cert, key),
        rogue_pem=write_pem(folder / "rogue.pem", rogue_cert, rogue_key),
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


SYSLOG = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<timestamp>\S+) (?P<hostname>\S+) (?P<app>\S+) (?P<procid>\S+)"
    r" (?P<msgid>\S+) (?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<msg>.*))?$",
    re.DOTALL,
)
SD_ELEMENT = re.compile(r"\[(?P<id>[^ \]]+)(?P<params>(?: [^=\s]+=\"(?:[^\"\\]|\\.)*\")*)\]")
SD_PARAM = re.compile(r' ([^=\s]+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Message:
    pri: int
    timestamp: datetime.datetime
    hostname: str
    app: str
    procid: str
    msgid: str
    sd: dict
    msg: str

    @property
    def severity(self) -> int:
        return self.pri % 8

    @property
    def facility(self) -> int:
        return self.pri // 8

    @property
    def params(self) -> dict:
        return self.sd.get(f"oneoff@{ENTERPRISE_ID}", {})


def parse_rfc5424(raw: bytes) -> Message:
    """Parse one message strictly enough that a malformed one fails the test."""
    text = raw.decode("utf-8")
    match = SYSLOG.match(text)
    assert match, f"not RFC 5424: {text!r}"
    sd = {}
    if match["sd"] != "-":
        for element in SD_ELEMENT.finditer(match["sd"]):
            sd[element["id"]] = {
                name: re.sub(r"\\(.)", r"\1", value)
                for name, value in SD_PARAM.findall(element["params"])
            }
    pri = int(match["pri"])
    assert 0 <= pri <= 191
    return Message(
        pri=pri,
        timestamp=datetime.datetime.fromisoformat(match["timestamp"]),
        hostname=match["hostname"],
        app=match["app"],
        procid=match["procid"],
        msgid=match["msgid"],
        sd=sd,
        msg=match["msg"] or "",
    )


@dataclass
class Receiver:
    """A TLS syslog server: octet-counting frames, every frame parsed on arrival."""

    cert_pem: str
    port: int = 0
    messages: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    handshake_failures: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._conns: list = []
        self._listener = None
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(self.cert_pem)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Receiver":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # Wakes the thread blocked in accept() (close alone would leave it accepting).
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener) -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw) -> None:
        raw.settimeout(10)
        try:
            conn = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshake_failures += 1
            raw.close()
            return
        with self._lock:
            self._conns.append(conn)
        buffer = b""
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while True:
                    space = buffer.find(b" ")
                    if space < 0:
                        break
                    length_text = buffer[:space]
                    assert length_text.isdigit(), f"bad frame length {length_text!r}"
                    length = int(length_text)
                    if len(buffer) < space + 1 + length:
                        break
                    payload = buffer[space + 1 : space + 1 + length]
                    buffer = buffer[space + 1 + length :]
                    message = parse_rfc5424(payload)
                    with self._lock:
                        self.messages.append(message)
        except (OSError, ssl.SSLError):
            return
        except AssertionError as exc:
            self.errors.append(str(exc))
        finally:
            conn.close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.messages)


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


@pytest.fixture
def fresh_forwarder(stream_settings):
    """A new forwarder per test, stopped (threads joined) at the end."""
    logstreams.forwarder = logstreams.Forwarder()
    yield logstreams.forwarder
    logstreams.forwarder.shutdown(timeout=1.0)


@pytest.fixture
def make_job(make_build):
    from jobs.models import EnvSnapshot, Job

    def make(service, **fields):
        build = service.latest_successful_build() or make_build(service)
        return Job.objects.create(
            workspace=service.workspace,
            service=service,
            start_command=fields.pop("start_command", "echo hi"),
            plan=service.plan,
            build=build,
            env_snapshot=EnvSnapshot.capture(service),
            **fields,
        )

    return make


@dataclass
class Line:
    """What the runner hands its batch listeners: a stored line's fields."""

    seq: int
    timestamp: datetime.datetime
    stream: int
    text: str


def lines(count: int, *, start: int = 1, stream=None, text="line {seq}"):
    now = datetime.datetime.now(datetime.UTC)
    return [
        Line(
            seq=seq,
            timestamp=now + datetime.timedelta(microseconds=seq),
            stream=stream or (2 if seq % 3 == 0 else 1),
            text=text.format(seq=seq),
        )
        for seq in range(start, start + count)
    ]

"""Plain helpers the tests import: the parts a test needs, waiting, people, API and htmx
requests, log lines, containers, git repositories, browser steps, and a TLS syslog receiver.

Fixtures live in conftest.py files and, when several test folders use them, in the plugin
modules of ``tests/plugins/`` that ``tests/conftest.py`` lists in ``pytest_plugins``.
"""

import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone

from jobs.models import Job, JobLogLine
from logstreams.syslog import ENTERPRISE_ID
from services.management.commands.bootstrap_demo import git
from services.models import ApiKey, Membership

# The real parts: Docker, PostgreSQL, Redis, Chromium.

REQUIRE_PARTS = os.environ.get("ONEOFF_REQUIRE_PARTS") == "1" or os.environ.get("CI") == "true"


# The tests' receivers, git servers and registries listen on loopback: the test settings
# allow-list it (tests/conftest.py and the worker subprocess), as an operator would for a local
# registry. The egress tests put back the default, an empty EGRESS_ALLOW.
TEST_EGRESS_ALLOW = ["127.0.0.0/8", "::1"]


def no_answer(host: str) -> str:
    """The egress rules' one wording for every failure to reach ``host`` (services.egress)."""
    return f"cannot connect to {host}: the address is not allowed or did not answer"


def missing_part(message: str):
    """A test needing a real part that is missing: fail in CI, skip on a laptop."""
    if REQUIRE_PARTS:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# Waiting.


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, message: str = ""):
    """Poll until ``predicate()`` is truthy; returns its value or fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


def wait_finished(job, timeout: float = 20.0):
    def finished():
        job.refresh_from_db()
        return job.is_finished

    wait_for(finished, timeout, message=f"{job.id} to finish (status {job.status})")
    return job


def wait_status(job, status: str, timeout: float = 15.0):
    def reached():
        job.refresh_from_db()
        return job.status == status

    wait_for(reached, timeout, message=f"{job.id} to be {status} (is {job.status})")
    return job


class Background(threading.Thread):
    """Runs a function in a thread with its own database connection (transactional tests)."""

    def __init__(self, target, *args, **kwargs):
        super().__init__(daemon=True)
        self._call = (target, args, kwargs)
        self.result = None
        self.error: BaseException | None = None

    def run(self):
        target, args, kwargs = self._call
        try:
            self.result = target(*args, **kwargs)
        except BaseException as exc:
            self.error = exc
        finally:
            connection.close()

    def finish(self, timeout: float = 30.0):
        self.join(timeout)
        assert not self.is_alive(), "the background build did not end"
        if self.error:
            raise self.error
        return self.result


# People.


def make_user(email: str, **extra):
    return get_user_model().objects.create_user(username=email, email=email, password="pw", **extra)


def make_member(workspace, email, role):
    user = make_user(email)
    Membership.objects.create(workspace=workspace, user=user, role=role)
    return user


# The API and the pages.


class ApiClient:
    def __init__(self, secret: str, key: ApiKey):
        self.secret = secret
        self.key = key
        self.client = Client()

    def request(self, method: str, url: str, body=None, *, raw: str | None = None, headers=None):
        headers = {"Authorization": f"Bearer {self.secret}", **(headers or {})}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        call = getattr(self.client, method.lower())
        if method.upper() in ("GET", "HEAD") or data is None:
            if method.upper() in ("GET", "HEAD"):
                return call(url, body or {}, headers=headers)
            return call(url, "", content_type="application/json", headers=headers)
        return call(url, data, content_type="application/json", headers=headers)

    def get(self, url, params=None, **kw):
        return self.request("GET", url, params, **kw)

    def post(self, url, body=None, **kw):
        return self.request("POST", url, body, **kw)

    def put(self, url, body=None, **kw):
        return self.request("PUT", url, body, **kw)

    def patch(self, url, body=None, **kw):
        return self.request("PATCH", url, body, **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, **kw)


def assert_error(response, status: int, *, field: str | None = None, id: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"id", "message"}, body
    if field is not None:
        assert body["message"].startswith(f"{field}:"), body
    if id is not None:
        assert body["id"] == id, body
    return body


HTMX = {"HTTP_HX_REQUEST": "true"}


def htmx(target: str | None = None, **extra) -> dict:
    headers = dict(HTMX)
    if target:
        headers["HTTP_HX_TARGET"] = target
    headers.update(extra)
    return headers


def add_lines(job, lines, start: int = 1):
    """Store log lines: strings go to stdout, (text, 2) tuples to stderr."""
    base = timezone.now()
    rows = []
    for i, line in enumerate(lines, start=start):
        text, stream = (line, 1) if isinstance(line, str) else line
        rows.append(
            JobLogLine(
                job=job,
                seq=i,
                timestamp=base + datetime.timedelta(microseconds=i),
                stream=stream,
                text=text,
            )
        )
    JobLogLine.objects.bulk_create(rows)
    Job.objects.filter(pk=job.pk).update(log_line_count=len(rows) + start - 1)


# Containers and builds.


def start_container(docker_client, image: str, instance: str, command: str):
    """A container running ``/bin/sh -c command``, logging as the runner's do (json-file)."""
    return docker_client.containers.run(
        image,
        ["/bin/sh", "-c", command],
        detach=True,
        labels={"oneoff.instance": instance},
        network_mode="none",
        log_config={"type": "json-file", "config": {}},
    )


def follow_container(docker_client, image: str, instance: str, job_id: str, command: str):
    """Run ``command`` in a container of ``image`` and follow its log into ``job_id``'s lines
    with a LogFollower until the container exited; returns the finished follower."""
    from jobs.logs.follow import LogFollower

    container = start_container(docker_client, image, instance, command)
    try:
        follower = LogFollower(job_id, container.id, lambda: docker_client.__class__.from_env())
        follower.start()
        follower.join(30)
        return follower
    finally:
        container.remove(force=True)
        connection.close()


BASE = "oneoff-test/busybox:latest"  # made by the busybox_image fixture


class Repo:
    """A git repository on disk, reachable as a file:// URL (builds clone it only from the
    workspace's folder of BUILD_LOCAL_REPOS_DIR: make it with ``local_repo``)."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()

    def commit(self, files: dict[str, str], message: str = "A commit") -> str:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        git(self.path, "add", "--all")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


def local_repo(workspace, name: str) -> Repo:
    """A repository in ``workspace``'s folder of BUILD_LOCAL_REPOS_DIR, the only place its
    builds may clone a local repository from."""
    from services.builds.git import local_root

    return Repo(local_root(workspace.id) / name)


# The browser.

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent / "e2e" / "screenshots"  # git-ignored
TIMEOUT_MS = 15_000


def chromium() -> str:
    """The system Chromium (a missing part when absent)."""
    if not os.path.exists(CHROMIUM):
        missing_part(f"Chromium is needed for browser tests ({CHROMIUM} is missing)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        missing_part(f"the playwright package is needed for browser tests: {exc}")
    return CHROMIUM


def sign_in(page, live_server, email: str, next_path: str = "/"):
    page.goto(f"{live_server.url}{next_path}")
    page.get_by_label("Email or username").fill(email)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# A real TLS syslog receiver (RFC 5425 framing, RFC 5424 parsing) with certificates made
# here. Everything listens on 127.0.0.1: this machine allows no other traffic.


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


def processes_with(marker: str) -> list[int]:
    """The host's processes whose command line holds ``marker`` (a build's RUN step runs as a
    runc container, which only the host's process table shows)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in command and "pytest" not in command:
            found.append(int(entry.name))
    return found


# Ports for the egress tests, all on 127.0.0.1: one where nothing listens, one that accepts and
# never says a word, one that speaks another protocol, and a git server over HTTPS.


def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Listener:
    """A TCP listener on 127.0.0.1 that keeps every connection and what it received: silent
    (it never writes), or sending ``banner`` first and closing after a moment."""

    def __init__(self, banner: bytes = b""):
        self.banner = banner
        self.connections = 0
        self.received = b""
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            if self.banner:
                conn.sendall(self.banner)
            conn.settimeout(0.5 if self.banner else 60)
            while chunk := conn.recv(4096):
                self.received += chunk
        if self.banner:
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class GitHttpsServer:
    """git's smart HTTP protocol over TLS on 127.0.0.1: ``git http-backend`` run as CGI for each
    request, serving the repositories in ``root`` (``url(name, host)`` gives a clone URL)."""

    def __init__(self, root: Path, cert_pem: str):
        backend_root = str(root)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._backend()

            def do_POST(self) -> None:
                self._backend()

            def log_message(self, *args) -> None:
                pass

            def _backend(self) -> None:
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": backend_root,
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": unquote(path),
                    "QUERY_STRING": query,
                    "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_ADDR": "127.0.0.1",
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                }
                result = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
                )
                head, _, payload = result.stdout.replace(b"\r\n", b"\n").partition(b"\n\n")
                status, headers = 200, []
                for line in head.decode().splitlines():
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_pem)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "GitHttpsServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PrivateRedis:
    """A redis-server of a test's own on a free loopback port, which the test may stop, restart or
    shut down without touching the machine's (shared) Redis. Its data is kept in an append-only
    file written at every command, so a restart (a clean shutdown and start) keeps its queues, as
    a production Redis with persistence does."""

    def __init__(self, directory: Path):
        self.directory = directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> "PrivateRedis":
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--logfile", str(self.directory / "redis.log"),
            ],
        )  # fmt: skip

        def answers():
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return True
            assert self.process is not None
            assert self.process.poll() is None, "redis-server exited"
            return False

        wait_for(answers, 10, 0.02, f"redis-server on port {self.port}")
        return self

    def stop(self, kill: bool = False) -> None:
        """A clean shutdown (SIGTERM: the append-only file is complete), or with ``kill`` a
        SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill() if kill else self.process.terminate()
        self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


def render_client(live_server, user, workspace):
    """Render's generated Python client (PyPI ``render``) on a live Oneoff, with a new API key of
    ``user`` in ``workspace``; strict: an answer its models cannot parse raises."""
    from render.public_api import AuthenticatedClient

    from services.models import ApiKey

    _, secret = ApiKey.issue(user, workspace)
    return AuthenticatedClient(
        base_url=f"{live_server.url}/v1", token=secret, raise_on_unexpected_status=True
    )

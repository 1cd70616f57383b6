"""A real HTTPS webhook receiver (TLS with the test CA of ``make_pki``) that verifies every
delivery's Standard Webhooks signature with the ``standardwebhooks`` library, and can be told to
answer slowly, hugely, with a redirect or an error, or be down."""

import http.server
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str
    payload: dict | None = None  # set when the signature verified
    verified: bool = False


@dataclass
class HttpsReceiver:
    pem: str
    port: int = 0
    secret: str = ""  # the webhook's; set by the test once the webhook exists
    status: int = 200
    answer: bytes = b'{"ok":true}'
    headers_out: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    trickle: bool = False  # send the answer a byte a second
    received: list[Received] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hook"

    def start(self) -> "HttpsReceiver":
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                return

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver._record(dict(self.headers.items()), body, self.path)
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(receiver.status)
                    for name, value in receiver.headers_out.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(receiver.answer)))
                    self.end_headers()
                    if receiver.trickle:
                        for byte in receiver.answer:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(1)
                    else:
                        self.wfile.write(receiver.answer)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass  # the sender gave up on a slow answer, as it should

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.pem)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _record(self, headers: dict[str, str], body: bytes, path: str) -> None:
        item = Received(headers={k.lower(): v for k, v in headers.items()}, body=body, path=path)
        if self.secret:
            try:
                item.payload = Verifier(self.secret).verify(body, item.headers)
                item.verified = True
            except WebhookVerificationError as exc:
                self.errors.append(f"signature of {item.headers.get('webhook-id')}: {exc}")
        else:
            item.payload = json.loads(body)
        with self._lock:
            self.received.append(item)

    def wait_for(self, count: int, timeout: float = 20.0, *, type: str | None = None) -> list:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = [
                    r
                    for r in self.received
                    if type is None or (r.payload or {}).get("type") == type
                ]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def hook_receiver(pki):
    """A receiver for tests in this process (their settings trust ``pki``'s CA)."""
    server = HttpsReceiver(pki.server_pem).start()
    yield server
    server.stop()
    assert not server.errors, server.errors


@pytest.fixture
def webhook_settings(settings, pki):
    settings.WEBHOOK_CA_FILE = pki.ca_file
    settings.WEBHOOK_TIMEOUT = 3.0
    settings.WEBHOOK_RETRY_SCHEDULE = [1.0, 1.0, 1.0]
    return settings

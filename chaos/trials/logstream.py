"""Log streams: the workspace forwards job logs to a local TLS syslog receiver (RFC 5424,
octet-counting frames, as tests/plugins/syslog.py's), which goes down mid-job and comes back
on the same port. Every line must arrive exactly once, and be stored once."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections import Counter
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chaos.check import FINAL, LINE, Outcome, Tracked, compare_lines, printed_lines
from chaos.run import Run, Target

ROUTE_TTL = 5.0  # seconds a process trusts its view of a workspace's stream (logstreams.forward)


def make_pki(folder: Path) -> tuple[str, str]:
    """A CA (its file goes to LOG_STREAM_CA_FILE) and a certificate for 127.0.0.1 it signed:
    (ca file, server certificate + key file)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Oneoff chaos CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = folder / "server.pem"
    server.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(ca_file), str(server)


class Receiver:
    """A TLS syslog receiver that counts, per job (the message's PROCID), each numbered line."""

    def __init__(self, server_pem: str) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(server_pem)
        self.port = 0
        self.lines: dict[str, Counter[int]] = {}
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Down as a crashed receiver is: the listener and every connection closed at once."""
        listener, self.listener = self.listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def counts(self, job_id: str) -> Counter[int]:
        with self.lock:
            return Counter(self.lines.get(job_id, Counter()))

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(60)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        with self.lock:
            self.conns.append(conn)
        buffer = b""
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while True:
                    space = buffer.find(b" ")
                    if space < 0 or not buffer[:space].isdigit():
                        break
                    end = space + 1 + int(buffer[:space])
                    if len(buffer) < end:
                        break
                    self._message(buffer[space + 1 : end].decode(errors="replace"))
                    buffer = buffer[end:]
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def _message(self, text: str) -> None:
        # <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD…] MSG; PROCID is the job's id.
        fields = text.split(" ", 5)
        if len(fields) < 6 or '"] ' not in text:
            return
        match = LINE.match(text.rsplit('"] ', 1)[1].strip())
        if match:
            with self.lock:
                self.lines.setdefault(fields[4], Counter())[int(match[1])] += 1


class Stream:
    """The trial's receiver and the workspace's stream to it, set up once per installation."""

    def __init__(self, target: Target, server_pem: str) -> None:
        self.target = target
        self.receiver = Receiver(server_pem).start()
        answer = target.api.set_log_stream(target.owner_id, self.receiver.endpoint)
        if not answer.ok:
            raise RuntimeError(f"setting the log stream: {answer.status} {answer.body}")
        time.sleep(ROUTE_TTL + 1)  # every process now forwards the workspace's lines

    def close(self) -> None:
        self.target.api.delete_log_stream(self.target.owner_id)
        self.receiver.stop()


def receiver_down(run: Run) -> None:
    stream = run.target.extras.get("logstream")
    if not isinstance(stream, Stream):
        stream = run.target.extras["logstream"] = Stream(run.target, run.parts.server_pem)
    receiver = stream.receiver
    down = run.sizes.receiver_down
    jobs = run.post_many(run.sizes.jobs, run.lines_for(down + 5))
    run.wait_running(jobs, lines=3)
    receiver.stop()
    time.sleep(down)
    receiver.start()

    def check(outcome: Outcome, tracked: dict[str, Tracked]) -> None:
        ended = {}
        for job_id in tracked:
            answer = run.api.job(run.target.service_id, job_id)
            if answer.ok and answer.body["status"] in FINAL:
                ended[job_id] = answer.body["status"]

        def printed(job_id: str) -> int:
            return printed_lines(tracked[job_id], ended[job_id], run.events.of(job_id))

        deadline = time.monotonic() + 60  # the forwarder's backoff, a reconnect, the rest
        while time.monotonic() < deadline:
            if all(sum(receiver.counts(j).values()) >= printed(j) for j in ended):
                break
            time.sleep(0.5)
        time.sleep(1)  # anything sent twice arrives too
        got = sum(sum(receiver.counts(j).values()) for j in ended)
        outcome.info.append(f"the receiver got {got} lines of {len(ended)} jobs")
        for job_id in ended:
            compare_lines(
                job_id, "at the log-stream receiver", printed(job_id), receiver.counts(job_id),
                outcome,
            )  # fmt: skip

    run.checks.append(check)


def close(target: Target) -> None:
    """After the trial's last run: the stream deleted, the receiver gone."""
    stream = target.extras.pop("logstream", None)
    if isinstance(stream, Stream):
        stream.close()

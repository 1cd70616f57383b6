"""Egress rules for git (issue 13, point 6), with real git and ssh against real sockets on
127.0.0.1: a workspace admin must not reach the server's own network through a repository URL,
nor tell a refused port from a silent or a TLS one by the build's errors."""

import http.server
import re
import ssl
import threading

import pytest

from services import egress
from services.builds import queue as builds
from services.models import BuildStatus
from tests.helpers import (
    BASE,
    GitHttpsServer,
    Listener,
    Receiver,
    Repo,
    closed_port,
    make_ca,
    make_server_cert,
    no_answer,
    write_pem,
)

pytestmark = pytest.mark.docker

PINNED_HOST = "git.oneoff.test"  # resolves nowhere: only the egress check's answer leads to it


def run(service, url, docker_client):
    service.repo_url = url
    service.branch = "main"
    service.save()
    return builds.run_build(builds.request_build(service).id, client=docker_client)


def shown(url: str) -> str:
    """The URL as the build shows it (any user info masked)."""
    return re.sub(r"(?<=://)[^/@]+@", "***@", url)


def texts(build) -> list[str]:
    return list(build.log_lines.order_by("seq").values_list("text", flat=True))


@pytest.fixture
def default_rules(settings):
    """EGRESS_ALLOW as shipped: empty."""
    settings.EGRESS_ALLOW = []
    return settings


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A CA git is told to trust (GIT_SSL_CAINFO) and a server certificate for localhost and
    the pinned name; and a certificate of another CA."""
    folder = tmp_path_factory.mktemp("git-tls")
    ca_key, ca_cert = make_ca()
    key, cert = make_server_cert(ca_key, ca_cert, hosts=(PINNED_HOST, "localhost", "127.0.0.1"))
    rogue_ca_key, rogue_ca_cert = make_ca("Rogue CA")
    rogue_key, rogue_cert = make_server_cert(rogue_ca_key, rogue_ca_cert)
    return {
        "ca": write_pem(folder / "ca.pem", ca_cert),
        "server": write_pem(folder / "server.pem", cert, key),
        "rogue": write_pem(folder / "rogue.pem", rogue_cert, rogue_key),
    }


@pytest.fixture
def git_server(tls, tmp_path, monkeypatch):
    """A git server over HTTPS on 127.0.0.1 serving ``acme/app.git`` (a Dockerfile on main)."""
    monkeypatch.setenv("GIT_SSL_CAINFO", tls["ca"])
    work = Repo(tmp_path / "work")
    work.commit({"Dockerfile": f"FROM {BASE}\nCOPY a /a\n", "a": "a\n"})
    bare = tmp_path / "served" / "acme" / "app.git"
    bare.parent.mkdir(parents=True)
    import subprocess

    subprocess.run(["git", "clone", "-q", "--bare", str(work.path), str(bare)], check=True)
    with GitHttpsServer(tmp_path / "served", tls["server"]) as server:
        yield server


@pytest.fixture
def pinned_name(monkeypatch):
    """``git.oneoff.test`` resolves to 127.0.0.1 for the egress check, and for no one else: git
    (curl, ssh) can only reach it through the address the check handed over."""
    resolve = egress._resolve

    def fake(host, port):
        return ["127.0.0.1"] if host == PINNED_HOST else resolve(host, port)

    monkeypatch.setattr(egress, "_resolve", fake)


# Refused by the rules: nothing connects.

REFUSED = [
    ("https://127.0.0.1:{port}/acme/app.git", "127.0.0.1"),
    ("https://localhost:{port}/acme/app.git", "localhost"),
    ("https://[::ffff:127.0.0.1]:{port}/acme/app.git", "::ffff:127.0.0.1"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("ssh://git@127.0.0.1:{port}/acme/app.git", "127.0.0.1"),
    ("ssh://git@localhost:{port}/acme/app.git", "localhost"),
    ("git@127.0.0.1:acme/app.git", "127.0.0.1"),
    ("git@localhost:acme/app.git", "localhost"),
    ("git@169.254.169.254:acme/app.git", "169.254.169.254"),
    ("localhost:acme/app.git", "localhost"),
]


@pytest.mark.parametrize(("form", "host"), REFUSED)
def test_loopback_and_metadata_addresses_are_refused_before_git_runs(
    default_rules, service, docker_client, form, host
):
    default_rules.BUILD_GIT_PROTOCOLS = ["https", "ssh", "http"]
    with Listener() as listener:
        url = form.format(port=listener.port)
        build = run(service, url, docker_client)
        assert listener.connections == 0

    assert build.status == BuildStatus.FAILED
    assert build.reason == f"could not clone {shown(url)}: {no_answer(host)}"
    assert texts(build)[1:] == [
        f"==> Cloning {shown(url)} (branch main)",
        f"==> Build failed: {build.reason}",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https::https://127.0.0.1/acme/app.git",  # git's remote helper syntax
        "ssh://-oProxyCommand=touch%20x/acme/app.git",
        "ssh://git@[127.0.0.1:22]/acme/app.git",
        "[git@127.0.0.1:22]:acme/app.git",
        "https://%31%32%37.0.0.1/acme/app.git",
        "https://127.0.0.1\\x/acme/app.git",
    ],
)
def test_a_url_git_might_read_otherwise_than_the_check_is_refused(service, docker_client, url):
    build = run(service, url, docker_client)
    assert build.status == BuildStatus.FAILED
    assert build.reason.endswith(": not a repository URL Oneoff can check"), build.reason


def test_a_name_resolving_to_loopback_is_refused_whatever_it_is_called(
    default_rules, pinned_name, service, docker_client
):
    url = f"https://{PINNED_HOST}:443/acme/app.git"
    build = run(service, url, docker_client)
    assert build.reason == f"could not clone {shown(url)}: {no_answer(PINNED_HOST)}"


# Allow-listed loopback (the tests' setting): a refused, a silent, a TLS and a foreign port all
# read alike.


@pytest.mark.parametrize("scheme", ["https", "ssh"])
def test_a_refused_a_silent_and_a_tls_port_read_alike(
    settings, tls, service, docker_client, scheme
):
    settings.BUILD_GIT_CONNECT_TIMEOUT = 1
    rogue = Receiver(tls["rogue"]).start()  # TLS, with a certificate git does not trust
    silent = Listener()
    foreign = Listener(banner=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    ports = {
        "refused": closed_port(),
        "silent": silent.port,
        "tls": rogue.port,
        "foreign": foreign.port,
    }
    try:
        builds_by_kind = {
            kind: run(service, f"{scheme}://git@127.0.0.1:{port}/acme/app.git", docker_client)
            for kind, port in ports.items()
        }
    finally:
        rogue.stop()
        silent.close()
        foreign.close()

    said = set()
    for kind, build in builds_by_kind.items():
        url = f"{scheme}://git@127.0.0.1:{ports[kind]}/acme/app.git"
        assert build.status == BuildStatus.FAILED, kind
        assert build.reason == f"could not clone {shown(url)}: {no_answer('127.0.0.1')}", kind
        said.add(tuple(re.sub(r":\d+/", ":PORT/", text) for text in texts(build)[1:]))
        assert (build.finished_at - build.started_at).total_seconds() < 15, kind
    assert len(said) == 1, said  # the same build log, word for word


def test_a_repository_on_allow_listed_loopback_builds(git_server, service, docker_client):
    build = run(service, git_server.url("acme/app.git"), docker_client)
    assert build.status == BuildStatus.SUCCEEDED, build.reason


def test_https_git_connects_to_the_checked_address_only(
    git_server, pinned_name, service, docker_client
):
    """curl never resolves git.oneoff.test itself (it cannot): the clone works only because git
    was held to the address the egress check resolved and allowed."""
    build = run(service, git_server.url("acme/app.git", host=PINNED_HOST), docker_client)
    assert build.status == BuildStatus.SUCCEEDED, build.reason


def test_ssh_connects_to_the_checked_address_only(pinned_name, service, docker_client):
    with Listener(banner=b"SSH-2.0-OpenSSH_9.9 not-really\r\n") as server:
        url = f"ssh://git@{PINNED_HOST}:{server.port}/acme/app.git"
        build = run(service, url, docker_client)
        assert b"SSH-2.0-" in server.received  # ssh itself spoke to the checked address
    assert build.reason == f"could not clone {shown(url)}: {no_answer(PINNED_HOST)}"


def test_a_redirect_is_not_followed(tls, monkeypatch, service, docker_client):
    """A server the rules allow must not send git on to an address they would refuse."""
    monkeypatch.setenv("GIT_SSL_CAINFO", tls["ca"])
    with Listener() as target:

        class Redirect(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(302)
                self.send_header("Location", f"https://127.0.0.1:{target.port}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls["server"])
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"https://localhost:{server.server_address[1]}/acme/app.git"
            build = run(service, url, docker_client)
        finally:
            server.shutdown()
            server.server_close()
        assert target.connections == 0
    assert build.status == BuildStatus.FAILED

"""Git for repository builds: clone the build's repository with the git CLI.

A branch build clones the branch's tip shallowly; a commit build clones the repository and checks
the commit out. The repository's credential (kept apart from its URL, encrypted) reaches git only
through a credential helper that reads it from git's environment, never through its arguments,
which any user on the host can see in ``ps``. git's output goes to the build log with credentials
masked, and a cancel or timeout kills git and its helpers.

Where git may go:

- A local repository (``file://`` or a plain path) only inside the workspace's own folder,
  ``BUILD_LOCAL_REPOS_DIR/<workspace id>/`` (symlinks resolved, ``..`` refused), so no workspace
  clones another's repository or Oneoff's own checkout.
- A remote one through the egress rules (``services.egress``): the host is resolved and checked
  before git runs, answered within ``BUILD_GIT_CONNECT_TIMEOUT`` on the checked address, and git
  is held to that address (curl's resolve list for https, ssh's ``HostName`` for ssh, the address
  in the URL for git://), with redirects off. Until git got an answer from a git server, its
  output stays out of the build: a refused, silent or TLS-failing port all read as the rules'
  one wording (the real output goes to the server log).
"""

import contextlib
import functools
import ipaddress
import logging
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from django.conf import settings

from services.builds.errors import BuildError
from services.egress import EgressRefused, allowed_addresses
from services.repo_urls import shown_url

if TYPE_CHECKING:
    from services.builds.executor import BuildLog
    from services.models import Build

logger = logging.getLogger(__name__)

COMMIT_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
USERINFO_RE = re.compile(r"(?<=://)[^/@\s]+@")
# git asks its credential helpers with "get" (and tells them "store" or "erase"): answer only that.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || return 0; '
    'printf "username=%s\\npassword=%s\\n" "$ONEOFF_GIT_USERNAME" "$ONEOFF_GIT_PASSWORD"; }; f'
)


def local_path(url: str) -> Path | None:
    """The folder a file:// URL or a plain path names (None for a remote URL)."""
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    if "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url) and "::" not in url:
        return Path(url)  # git reads a plain path (or a/relative one) as a local repository
    return None


def local_root(workspace_id: str) -> Path:
    """The folder a workspace's local repositories must be in."""
    return Path(settings.BUILD_LOCAL_REPOS_DIR) / workspace_id


def allowed_protocols(url: str, workspace_id: str) -> list[str]:
    """The transports git may use for ``url``: BUILD_GIT_PROTOCOLS, plus ``file`` for a local
    repository inside the workspace's folder of BUILD_LOCAL_REPOS_DIR (no ``..``, symlinks
    resolved, so none leads out of it)."""
    protocols = [p for p in settings.BUILD_GIT_PROTOCOLS if p != "file"]
    path = local_path(url)
    if path is not None and path.is_absolute() and ".." not in path.parts:
        root = local_root(workspace_id).resolve()
        if path.resolve().is_relative_to(root):
            protocols.append("file")
    return protocols


# Remote repositories: the egress rules.

# git's remote-curl transports (held to the checked address by curl's resolve list), and the
# ports of every transport whose host this module can check.
CURL_TRANSPORTS = {"http": 80, "https": 443, "ftp": 21, "ftps": 990}
DEFAULT_PORTS = {**CURL_TRANSPORTS, "ssh": 22, "git": 9418}
SSH_SCHEMES = ("ssh", "git+ssh", "ssh+git")
TLS_TRANSPORTS = ("https", "ftps")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")  # git's remote helper syntax
_HOST = r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])"
# The authority as curl, ssh and git read it alike: no second "@", no backslash, a numeric port.
_NETLOC = re.compile(rf"^(?:[^@/\\?#\s\[\]]+@)?({_HOST})(?::(\d{{1,5}}))?$")
_SCP_LIKE = re.compile(rf"^(?:[^@/\\\s\[\]:]+@)?({_HOST}):(?!//)")
# Output only a git server (or an HTTP server's answer) prints: past it, git's errors are the
# repository's (a missing branch, a refused credential) and are shown as they are.
SERVER_ANSWERED = re.compile(
    r"^remote: |not found in upstream|repository '[^']*' not found|authentication failed"
    r"|the requested url returned error: \d{3}|permission denied \(|could not read (?:username"
    r"|password) for|does not appear to be a git repository|couldn't find remote ref"
    r"|not our ref|access denied",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Remote:
    """Where git connects for a remote URL: its transport, host (no brackets) and port."""

    transport: str
    host: str
    port: int

    @property
    def literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


@dataclass
class Reach:
    """How git is held to the checked address of ``host``: ``-c`` options, environment, the URL
    to use."""

    host: str
    url: str
    options: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def transport_of(url: str) -> str:
    """The transport git picks for ``url``, by git's own rules (transport.c, connect.c):
    ``file`` for a path (no colon, or a slash before the first one) or a file:// URL, the
    scheme for ``scheme://``, ``ssh`` for ``[user@]host:path``, and ``name::`` for a remote
    helper's ``name::address`` (which this module never lets through)."""
    helper = _HELPER.match(url)
    if helper:
        return helper[0]
    colon, slash = url.find(":"), url.find("/")
    if colon < 0 or 0 <= slash < colon:
        return "file"
    scheme = _SCHEME.match(url)
    if scheme:
        name = scheme[1].lower()
        return "ssh" if name in SSH_SCHEMES else name
    return "ssh"


def remote_of(url: str, transport: str) -> Remote | None:
    """The host and port git connects to for ``url``, read strictly (None when the URL is one
    that curl, ssh or git might read differently from this: such a URL is refused)."""
    scheme = _SCHEME.match(url)
    if scheme:
        if any(c.isspace() or c == "\\" for c in url):
            return None
        netloc = url[scheme.end() :].split("/", 1)[0]
        if transport in CURL_TRANSPORTS:
            netloc = re.split(r"[?#]", netloc, maxsplit=1)[0]
        match = _NETLOC.match(netloc)
        if not match:
            return None
        host, port = match[1], int(match[2]) if match[2] else DEFAULT_PORTS[transport]
    else:
        match = _SCP_LIKE.match(url)
        if not match:
            return None
        host, port = match[1], DEFAULT_PORTS["ssh"]
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    if not 1 <= port <= 65535:
        return None
    return Remote(transport, host.lower(), port)


def first_answer(remote: Remote, addresses: list[str], timeout: float) -> str:
    """The first checked address where something answers within ``timeout`` (a TLS handshake
    for https, a TCP connection otherwise); EgressRefused when none does. git then connects to
    that address only, and a silent port costs ``timeout``, not git's own (curl's: 5 minutes)."""
    deadline = time.monotonic() + timeout
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # git verifies; this only asks whether TLS answers
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            with socket.create_connection((address, remote.port), timeout=remaining) as sock:
                if remote.transport in TLS_TRANSPORTS:
                    name = None if remote.literal else remote.host
                    with context.wrap_socket(sock, server_hostname=name):
                        pass
            return address
        except OSError as exc:
            logger.warning(
                "git: %s port %s (%s) did not answer: %r", remote.host, remote.port, address, exc
            )
    raise EgressRefused(remote.host)


CURLOPT_RESOLVE_SINCE = (2, 37)  # the git that reads http.curloptResolve


@functools.cache
def git_version() -> tuple[int, ...]:
    result = subprocess.run(
        ["git", "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    match = re.search(r"(\d+)\.(\d+)", result.stdout)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def reach(url: str, remote: Remote, address: str) -> Reach:
    """git's options that hold it to ``address`` for ``remote``."""
    bracketed = f"[{address}]" if ":" in address else address
    timeout = max(1, round(settings.BUILD_GIT_CONNECT_TIMEOUT))
    if remote.transport in CURL_TRANSPORTS:
        options = ["-c", "http.followRedirects=false"]  # a redirect would go unchecked
        if not remote.literal:
            options += ["-c", f"http.curloptResolve={remote.host}:{remote.port}:{bracketed}"]
            if git_version() < CURLOPT_RESOLVE_SINCE:
                logger.warning(
                    "git %s ignores http.curloptResolve (2.37 and newer read it): %s is checked "
                    "but git resolves it again",
                    ".".join(map(str, git_version())),
                    remote.host,
                )
        return Reach(remote.host, url, options)
    if remote.transport == "ssh":
        # ssh looks host keys up by this name, as it would have without HostName.
        alias = remote.host if remote.port == 22 else f"[{remote.host}]:{remote.port}"
        base = os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        command = (
            f"{base} -o HostName={shlex.quote(address)} -o Port={remote.port}"
            f" -o HostKeyAlias={shlex.quote(alias)} -o ConnectTimeout={timeout}"
        )
        return Reach(remote.host, url, env={"GIT_SSH_COMMAND": command})
    # git:// has no option for it: the address goes into the URL.
    scheme, _, rest = url.partition("://")
    path = rest.split("/", 1)[1] if "/" in rest else ""
    return Reach(remote.host, f"{scheme}://{bracketed}:{remote.port}/{path}")


class GitSteps:
    """The git steps of ``executor.BuildRun``, which provides ``build``, ``log``, ``pump`` and
    ``stop_reason``."""

    build: "Build"
    log: "BuildLog"
    pump: Callable[..., None]
    stop_reason: str

    def clone(self, checkout: str) -> None:
        build = self.build
        url = build.repo_url
        branch = build.branch
        commit = build.commit_id
        shown = USERINFO_RE.sub("***@", shown_url(url, build.repo_credential))
        auth = credential_env(url, build.repo_credential)
        if commit and not COMMIT_RE.match(commit):
            raise BuildError(f"{commit!r} is not a commit id (4 to 64 hexadecimal characters)")
        if url.startswith("-"):
            raise BuildError(f"{shown!r} is not a git repository URL")
        protocols = allowed_protocols(url, build.service.workspace_id)
        branch_args = [f"--branch={branch}"] if branch else []
        where = f"commit {commit}" if commit else (f"branch {branch}" if branch else "HEAD")
        self.log.line(f"==> Cloning {shown} ({where})", system=True)
        way = self.checked_reach(url, shown, protocols)
        options, target = (way.options, way.url) if way else ([], url)
        env = {**auth, **(way.env if way else {})}
        if commit:
            self.git(
                [*options, "clone", "--no-checkout", *branch_args, "--", target, checkout],
                shown,
                protocols,
                auth=env,
                remote_host=way.host if way else "",
            )
            self.git(["-C", checkout, "checkout", "--quiet", "--detach", commit], shown, [], commit)
        else:
            shallow = ["--depth=1", "--single-branch", "--no-tags"]
            self.git(
                [*options, "clone", *shallow, *branch_args, "--", target, checkout],
                shown,
                protocols,
                auth=env,
                remote_host=way.host if way else "",
            )

    def checked_reach(self, url: str, shown: str, protocols: list[str]) -> Reach | None:
        """For a remote URL of an allowed transport: check its host by the egress rules, wait
        for an answer on a checked address, and return how git is held to that address. None
        for a local repository, or a transport git itself refuses (it says so, connecting
        nowhere)."""
        transport = transport_of(url)
        if transport == "file" or transport.removesuffix("::") not in protocols:
            return None
        remote = remote_of(url, transport) if transport in DEFAULT_PORTS else None
        if remote is None:
            # A remote helper, a transport git cannot be held to an address for, or a URL that
            # curl, ssh or git might read otherwise than this module.
            raise BuildError(f"could not clone {shown}: not a repository URL Oneoff can check")
        try:
            addresses = allowed_addresses(remote.host, remote.port)
            address = first_answer(remote, addresses, settings.BUILD_GIT_CONNECT_TIMEOUT)
        except EgressRefused as exc:
            raise BuildError(f"could not clone {shown}: {exc.message}") from exc
        return reach(url, remote, address)

    def git(
        self,
        args: list[str],
        shown_url: str,
        protocols: list[str],
        commit: str = "",
        *,
        auth: dict[str, str] | None = None,
        remote_host: str = "",
    ) -> None:
        """Run git, its output into the build log; ``protocols`` are the transports it may use
        (none for a step in the local checkout), ``auth`` the credential_env for the remote.

        For a clone from ``remote_host`` the output is held back: shown once git is done, unless it
        failed before any git server answered; then the build says only the egress rules' one
        wording (what git said goes to the server log)."""
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": ":".join(protocols),
            "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
            "LC_ALL": "C",
            **(auth or {}),
        }
        proc = subprocess.Popen(
            ["git", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            start_new_session=True,  # so a kill reaches git's helpers too
        )
        assert proc.stdout is not None  # stdout=PIPE
        output: list[str] = []

        def consume(text: str) -> None:
            output.append(text.rstrip("\n"))
            if not remote_host:
                self.log.line(text.rstrip("\n"))

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

        try:
            self.pump(lambda: proc.stdout, consume, kill)
        finally:
            if proc.poll() is None and self.stop_reason:
                kill()
            proc.wait()
            proc.stdout.close()
        if remote_host:
            answered = any(SERVER_ANSWERED.search(line) for line in output)
            if proc.returncode != 0 and not answered:
                masked = [USERINFO_RE.sub("***@", line) for line in output]
                logger.warning("git: cloning %s failed: %s", shown_url, " | ".join(masked))
                refused = EgressRefused(remote_host)
                raise BuildError(f"could not clone {shown_url}: {refused.message}")
            for line in output:
                self.log.line(line)
        if proc.returncode != 0:
            detail = _git_error(output)
            if commit:
                raise BuildError(f"commit {commit} was not found in {shown_url}: {detail}")
            raise BuildError(f"could not clone {shown_url}: {detail}")

    def git_output(self, checkout: str, *args: str) -> str:
        result = subprocess.run(
            ["git", "-C", checkout, *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
            check=True,
        )
        return result.stdout.strip()


def credential_env(url: str, credential: str) -> dict[str, str]:
    """The environment that hands ``credential`` (``user:token``, percent-encoded as in a URL) to
    git for ``url``'s host only: a credential helper in GIT_CONFIG_* (after an empty one, which
    drops any helper configured on the host) that prints the user and token from the environment."""
    if not credential:
        return {}
    user, _, token = credential.partition(":")
    parts = urlsplit(url)
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": f"credential.{parts.scheme}://{parts.netloc}.helper",
        "GIT_CONFIG_VALUE_1": CREDENTIAL_HELPER,
        "ONEOFF_GIT_USERNAME": unquote(user),
        "ONEOFF_GIT_PASSWORD": unquote(token),
    }


def _git_error(output: list[str]) -> str:
    fatal = [line for line in output if line.startswith(("fatal:", "error:"))]
    lines = fatal or [line for line in output if line.strip()]
    if not lines:
        return "git exited with an error"
    text = lines[0] if fatal else lines[-1]  # git's first fatal line is the most specific
    for prefix in ("fatal: ", "error: "):
        text = text.removeprefix(prefix)
    return USERINFO_RE.sub("***@", text)

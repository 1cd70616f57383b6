"""Git for repository builds: clone the build's repository with the git CLI.

A branch build clones the branch's tip shallowly; a commit build clones the repository and checks
the commit out. The repository's credential (kept apart from its URL, encrypted) reaches git only
through a credential helper that reads it from git's environment, never through its arguments,
which any user on the host can see in ``ps``. git's output goes to the build log with credentials
masked, and a cancel or timeout kills git and its helpers.
"""

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from django.conf import settings

from services.builds.errors import BuildError
from services.repo_urls import shown_url

if TYPE_CHECKING:
    from services.builds.executor import BuildLog
    from services.models import Build

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


def allowed_protocols(url: str) -> list[str]:
    """The transports git may use for ``url``: BUILD_GIT_PROTOCOLS, plus ``file`` for a local
    repository inside BUILD_LOCAL_REPOS_DIR (symlinks resolved, so none leads out of it)."""
    protocols = [p for p in settings.BUILD_GIT_PROTOCOLS if p != "file"]
    path = local_path(url)
    if path is not None and path.is_absolute():
        root = Path(settings.BUILD_LOCAL_REPOS_DIR).resolve()
        if path.resolve().is_relative_to(root):
            protocols.append("file")
    return protocols


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
        protocols = allowed_protocols(url)
        branch_args = [f"--branch={branch}"] if branch else []
        where = f"commit {commit}" if commit else (f"branch {branch}" if branch else "HEAD")
        self.log.line(f"==> Cloning {shown} ({where})", system=True)
        if commit:
            self.git(
                ["clone", "--no-checkout", *branch_args, "--", url, checkout],
                shown,
                protocols,
                auth=auth,
            )
            self.git(["-C", checkout, "checkout", "--quiet", "--detach", commit], shown, [], commit)
        else:
            shallow = ["--depth=1", "--single-branch", "--no-tags"]
            self.git(
                ["clone", *shallow, *branch_args, "--", url, checkout], shown, protocols, auth=auth
            )

    def git(
        self,
        args: list[str],
        shown_url: str,
        protocols: list[str],
        commit: str = "",
        *,
        auth: dict[str, str] | None = None,
    ) -> None:
        """Run git, its output into the build log; ``protocols`` are the transports it may use
        (none for a step in the local checkout), ``auth`` the credential_env for the remote."""
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

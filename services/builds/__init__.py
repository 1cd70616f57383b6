"""Builds: where a service's artifacts (immutable Docker image ids) come from.

A build's life:

- ``request_build`` queues it and, once the transaction commits, sends the ``run_build`` task.
- ``run_build`` claims the **oldest** queued build of the service with a compare-and-set update
  made while the service row is locked, and only when no other build of that service is
  ``building``. So two builds of one service never interleave: *a newer build waits* for the
  running one, and the runner that finishes a build goes on with the next queued one. A task
  delivered twice, or one for a build that another runner will start, does nothing.
- An image build resolves the reference to the image's immutable id (pulling it only when the
  engine lacks it, within ``BUILD_PULL_TIMEOUT``); a repository build clones the repository with
  the git CLI and runs ``docker build`` (classic builder) with the service's Dockerfile and
  context, streaming output into ``BuildLogLine`` while it runs. Either way the image is tagged
  ``oneoff/<service-id>:<build-id>`` and the build records the image **id**, so a later retag of
  the source never changes what a job runs.
- ``cancel_build`` cancels a queued build at once and asks a running one to stop; the runner
  notices within half a second, kills ``git`` or closes the ``docker build`` stream (which makes
  the engine stop the build and remove its intermediate container), and ends it ``canceled``.
- ``sweep_builds`` (beat, every minute) fails builds whose worker died and re-sends queued builds
  whose message may be lost; ``cleanup_images`` (beat) removes old builds' images.

Failed and canceled builds never carry an image, so ``Service.latest_successful_build`` (what
new jobs run) never moves to them.
"""

import contextlib
import json
import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import docker
import requests
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.utils import parse_repository_tag

from jobs.models import Job
from services.errors import Refused
from services.models import BUILD_FINISHED, Build, BuildLogLine, BuildStatus, Service

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.25  # seconds between log flushes while output arrives
CANCEL_POLL_INTERVAL = 0.5  # seconds between checks for a cancel request
HEARTBEAT_INTERVAL = 10  # seconds between heart-beats of a running build
HEARTBEAT_STALE = 120  # seconds without a heart-beat before the sweep fails a build
QUEUED_STALE = 60  # seconds a queued build may wait, with nothing building, before a resend
STOP_WAIT = 5  # seconds to wait for a killed git or docker build stream to end
LINE_MAX_CHARS = 8 * 1024
LOG_BATCH = 500
COMMIT_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
USERINFO_RE = re.compile(r"(?<=://)[^/@\s]+@")


class BuildError(Exception):
    """A build failed for a reason the user can act on; the message is shown as is."""


class BuildStopped(Exception):
    """The build was canceled, or ran out of time, while a step was running."""


class CancelRefused(Refused):
    """Only unfinished builds can be canceled."""


def tag_for(build: Build) -> str:
    return f"oneoff/{build.service_id}:{build.id}"


def _who(user) -> str:
    if user is not None and user.is_authenticated:
        return user.email or user.get_username()
    return "api"


def request_build(
    service: Service, *, commit_id: str = "", image_ref: str = "", user=None
) -> Build:
    """Queue a build of the service's configured source (or of a given commit or image) and
    start it once the transaction commits."""
    build = Build.objects.create(
        service=service,
        image_ref=image_ref or (service.image_ref if not commit_id else ""),
        repo_url="" if image_ref else service.repo_url,
        branch="" if image_ref else service.branch,
        commit_id=commit_id,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    transaction.on_commit(lambda: enqueue_build(build.id))
    return build


def enqueue_build(build_id: str) -> None:
    current_app.send_task("services.tasks.run_build", args=[build_id])


def cancel_build(build: Build, *, user=None) -> Build:
    """Cancel a build. Queued: canceled at once, it never starts. Building: the runner stops it
    (kills git or the docker build) within a second and ends it ``canceled``. Canceled:
    unchanged. Succeeded or failed: refused."""
    now = timezone.now()
    reason = f"Canceled by {_who(user)}."
    if Build.objects.filter(pk=build.pk, status=BuildStatus.QUEUED).update(
        status=BuildStatus.CANCELED, cancel_requested_at=now, finished_at=now, reason=reason
    ):
        BuildLogLine.objects.create(build_id=build.pk, seq=1, timestamp=now, text=f"==> {reason}")
    else:
        Build.objects.filter(
            pk=build.pk, status=BuildStatus.BUILDING, cancel_requested_at__isnull=True
        ).update(cancel_requested_at=now, reason=reason)
    build.refresh_from_db()
    if build.status in (BuildStatus.SUCCEEDED, BuildStatus.FAILED):
        raise CancelRefused(
            f"build {build.id} has already {build.status}; only unfinished builds can be canceled"
        )
    return build


def claim_next(service_id: str) -> Build | None:
    """Claim the oldest queued build of the service, unless one of its builds is running."""
    with transaction.atomic():
        # The service row lock makes "nothing is building" and the claim one step.
        if not list(Service.objects.select_for_update().filter(pk=service_id).values("pk")):
            return None
        builds = Build.objects.filter(service_id=service_id)
        if builds.filter(status=BuildStatus.BUILDING).exists():
            return None
        for candidate in builds.filter(status=BuildStatus.QUEUED).order_by("created_at", "id"):
            now = timezone.now()
            claimed = Build.objects.filter(pk=candidate.pk, status=BuildStatus.QUEUED).update(
                status=BuildStatus.BUILDING, started_at=now, heartbeat_at=now
            )
            if claimed:
                return Build.objects.select_related("service").get(pk=candidate.pk)
    return None


def run_build(build_id: str, *, client=None) -> Build | None:
    """Run the service's queued builds, oldest first, while none of them runs elsewhere.

    The build asked for may be run here, or by the runner of an earlier build of the same
    service when that one finishes: either way it runs exactly once, after the ones before it.
    """
    service_id = Build.objects.filter(pk=build_id).values_list("service_id", flat=True).first()
    if service_id is None:
        return None
    while (build := claim_next(service_id)) is not None:
        BuildRun(build, client=client).run()
    return Build.objects.get(pk=build_id)


class BuildLog:
    """Buffers a build's log lines and writes them in batches, at least every 250 ms."""

    def __init__(self, build: Build, *, mask: str = ""):
        self.build_id = build.pk
        last = BuildLogLine.objects.filter(build_id=build.pk).aggregate(last=Max("seq"))["last"]
        self.seq = last or 0
        self.pending: list[BuildLogLine] = []
        self.partial = ""
        self.bytes = 0
        self.truncated = False
        self.last_flush = time.monotonic()
        self.mask = mask

    def clean(self, text: str) -> str:
        text = text.replace("\x00", "").rstrip("\r")
        if "\r" in text:  # progress bars: keep the last state only
            text = text.rsplit("\r", 1)[-1]
        if self.mask:
            text = text.replace(self.mask, "***@")
        if len(text) > LINE_MAX_CHARS:
            text = text[:LINE_MAX_CHARS] + " [line truncated]"
        return text

    def line(self, text: str, *, system: bool = False) -> None:
        text = self.clean(text)
        size = len(text.encode()) + 1
        if not system:
            if self.truncated:
                return
            if self.bytes + size > settings.BUILD_LOG_MAX_BYTES:
                self.truncated = True
                text = (
                    f"[build log truncated: output beyond {settings.BUILD_LOG_MAX_BYTES} bytes "
                    "is not stored]"
                )
        self.bytes += size
        self.seq += 1
        self.pending.append(
            BuildLogLine(build_id=self.build_id, seq=self.seq, timestamp=timezone.now(), text=text)
        )

    def write(self, chunk: str) -> None:
        """Add output that may end mid-line; complete lines are logged, the rest waits."""
        lines = (self.partial + chunk).split("\n")
        self.partial = lines.pop()
        for text in lines:
            self.line(text)
        if len(self.partial) > LINE_MAX_CHARS:  # no newline in sight: don't hoard it
            self.end_partial()

    def end_partial(self) -> None:
        if self.partial:
            self.line(self.partial)
            self.partial = ""

    def maybe_flush(self) -> None:
        if len(self.pending) >= LOG_BATCH or (
            self.pending and time.monotonic() - self.last_flush >= FLUSH_INTERVAL
        ):
            self.flush()

    def flush(self) -> None:
        if self.pending:
            BuildLogLine.objects.bulk_create(self.pending)
            self.pending = []
        self.last_flush = time.monotonic()


class _Response:
    """Captures the HTTP response of a streaming Docker call made in one thread, so another
    thread can close it (closing a ``docker build`` stream makes the engine stop the build)."""

    def __init__(self, api):
        self.api = api
        self.thread: threading.Thread | None = None
        self.response = None

    def hook(self, response, *args, **kwargs):
        if threading.current_thread() is self.thread:
            self.response = response
        return response

    def __enter__(self):
        self.api.hooks["response"].append(self.hook)
        return self

    def __exit__(self, *exc):
        self.api.hooks["response"].remove(self.hook)

    def close(self) -> None:
        response = self.response
        if response is None:
            return
        # The blocked reader only wakes up on a shutdown of the socket, not on a close.
        with contextlib.suppress(AttributeError, OSError):
            response.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            response.close()


class BuildRun:
    """One claimed build, run to its end: succeeded, failed or canceled."""

    def __init__(self, build: Build, *, client=None):
        self.build = build
        self.service = build.service
        self._client = client
        self.log = BuildLog(build, mask=_userinfo(build.repo_url))
        self.deadline = time.monotonic() + settings.BUILD_TIMEOUT
        self.stop_reason = ""
        self.next_poll = 0.0
        self.next_heartbeat = time.monotonic() + HEARTBEAT_INTERVAL
        self.workdir = ""

    @property
    def client(self):
        if self._client is None:
            try:
                self._client = docker.from_env(timeout=60)
                self._client.ping()
            except DockerException as exc:
                raise BuildError(f"the Docker Engine is not reachable: {exc}") from exc
        return self._client

    # -- the outline ------------------------------------------------------------------------

    def run(self) -> None:
        build = self.build
        self.log.line(
            f"==> Build {build.id} of {self.service.name} started on {settings.RUNNER_HOST}",
            system=True,
        )
        try:
            if build.image_ref:
                image_id = self.from_image(build.image_ref)
            elif build.repo_url:
                image_id = self.from_repo()
            else:
                raise BuildError(
                    "the service has no build source: set an image or a git repository"
                )
        except BuildStopped:
            self.end_stopped()
        except BuildError as exc:
            self.end(BuildStatus.FAILED, self.log.clean(str(exc)))
        except Exception as exc:
            logger.exception("build %s crashed", build.id)
            self.end(BuildStatus.FAILED, f"the build stopped on an internal error: {exc}")
        else:
            if self.cancel_requested():
                self.untag()
                self.end_stopped()
            else:
                self.end(BuildStatus.SUCCEEDED, image_id=image_id, image_tag=tag_for(build))
        finally:
            if self.workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def end(self, status: str, reason: str = "", *, image_id: str = "", image_tag: str = ""):
        if status == BuildStatus.SUCCEEDED:
            self.log.line(f"==> Build succeeded: image {image_id} ({image_tag})", system=True)
        elif status == BuildStatus.FAILED:
            self.log.line(f"==> Build failed: {reason}", system=True)
        else:
            self.log.line(f"==> Build canceled: {reason}", system=True)
        self.log.flush()
        Build.objects.filter(pk=self.build.pk, status=BuildStatus.BUILDING).update(
            status=status,
            reason=reason,
            image_id=image_id,
            image_tag=image_tag,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )

    def end_stopped(self) -> None:
        if self.stop_reason == "timeout":
            self.end(
                BuildStatus.FAILED,
                f"the build did not finish within {settings.BUILD_TIMEOUT} seconds (BUILD_TIMEOUT)",
            )
        else:
            reason = Build.objects.filter(pk=self.build.pk).values_list("reason", flat=True)[0]
            self.end(BuildStatus.CANCELED, reason or "Canceled.")

    # -- watching for cancel and timeout ------------------------------------------------------

    def cancel_requested(self) -> bool:
        return Build.objects.filter(pk=self.build.pk, cancel_requested_at__isnull=False).exists()

    def should_stop(self, deadline: float | None = None) -> bool:
        """Poll (at most every 0.5 s) for a cancel request, and keep the heart beating."""
        now = time.monotonic()
        if now >= (deadline or self.deadline):
            self.stop_reason = "timeout"
            return True
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + HEARTBEAT_INTERVAL
            Build.objects.filter(pk=self.build.pk).update(heartbeat_at=timezone.now())
        if now >= self.next_poll:
            self.next_poll = now + CANCEL_POLL_INTERVAL
            if self.cancel_requested():
                self.stop_reason = "cancel"
                return True
        return False

    def pump(self, produce, consume, kill, *, deadline: float | None = None) -> None:
        """Run ``produce()`` (an iterable that blocks, such as git's output or a docker build
        stream) in a reader thread; hand each item to ``consume`` in this thread, flush the log
        every 250 ms, and ``kill()`` the producer when the build is canceled or runs out of
        time (then raise ``BuildStopped``). An error of the producer is raised here."""
        items: queue.Queue = queue.Queue()
        done = object()
        failure: list[BaseException] = []

        def reader():
            try:
                for item in produce():
                    items.put(item)
            except BaseException as exc:
                failure.append(exc)
            finally:
                items.put(done)

        thread = threading.Thread(target=reader, name=f"{self.build.id}-reader", daemon=True)
        thread.start()
        stopping_since = None
        while True:
            try:
                item = items.get(timeout=FLUSH_INTERVAL)
            except queue.Empty:
                item = None
            if item is done:
                break
            if item is not None and stopping_since is None:
                consume(item)
            self.log.maybe_flush()
            if stopping_since is None and self.should_stop(deadline):
                stopping_since = time.monotonic()
            if stopping_since is not None:
                kill()  # again and again: the stream may not have been open the first time
                if time.monotonic() - stopping_since > STOP_WAIT:
                    logger.warning("build %s: the stopped step did not end", self.build.id)
                    break
        self.log.end_partial()
        self.log.flush()
        if stopping_since is not None:
            raise BuildStopped
        if failure:
            raise failure[0]

    # -- image builds ---------------------------------------------------------------------------

    def from_image(self, ref: str) -> str:
        self.log.line(f"==> Resolving image {ref}", system=True)
        try:
            image = self.client.images.get(ref)
        except ImageNotFound:
            image = self.pull(ref)
        except APIError as exc:
            raise BuildError(f"{ref!r} is not a valid image reference: {_explain(exc)}") from exc
        self.log.line(f"==> {ref} is image {image.id}", system=True)
        self.tag(image.id)
        return image.id

    def pull(self, ref: str):
        repository, tag = parse_repository_tag(ref)
        if not tag:
            tag = "latest"
        timeout = settings.BUILD_PULL_TIMEOUT
        self.log.line(f"==> {ref} is not on this Docker Engine; pulling it", system=True)
        errors: list[str] = []

        def consume(chunk: dict):
            if chunk.get("error"):
                errors.append(chunk["error"])
            elif chunk.get("status") and "progress" not in chunk:
                prefix = f"{chunk['id']}: " if chunk.get("id") else ""
                self.log.line(prefix + chunk["status"])

        api = self.client.api
        timed_out = (
            f"image {ref!r} is not on this Docker Engine and pulling it did not finish within "
            f"{timeout} seconds (BUILD_PULL_TIMEOUT)"
        )
        with _Response(api) as response:

            def produce():
                # docker-py's pull() waits for the engine's first answer without any timeout;
                # this request bounds that wait (and any silence after it) by the pull timeout.
                response.thread = threading.current_thread()
                answer = api.post(
                    f"{api.base_url}/v{api.api_version}/images/create",
                    params={"fromImage": repository, "tag": tag},
                    stream=True,
                    timeout=(10, timeout),
                )
                if answer.status_code >= 400:
                    try:
                        errors.append(answer.json()["message"])
                    except (ValueError, KeyError, TypeError):
                        errors.append(f"{answer.status_code} {answer.reason}")
                    return
                for line in answer.iter_lines():
                    if line:
                        yield json.loads(line)

            try:
                self.pump(
                    produce,
                    consume,
                    response.close,
                    deadline=min(self.deadline, time.monotonic() + timeout),
                )
            except BuildStopped:
                if self.stop_reason == "timeout" and time.monotonic() < self.deadline:
                    raise BuildError(timed_out) from None
                raise
            except requests.Timeout:
                raise BuildError(timed_out) from None
            except (requests.RequestException, DockerException, OSError, ValueError) as exc:
                errors.append(_explain(exc))
        try:
            if errors:
                raise ImageNotFound(errors[-1])
            return self.client.images.get(ref)
        except (ImageNotFound, NotFound) as exc:
            reason = errors[-1] if errors else _explain(exc)
            raise BuildError(
                f"image {ref!r} is not on this Docker Engine and could not be pulled: {reason}"
            ) from exc

    def tag(self, image_id: str) -> None:
        repository, tag = tag_for(self.build).split(":")
        self.client.api.tag(image_id, repository, tag)

    def untag(self) -> None:
        with contextlib.suppress(DockerException, BuildError):
            self.client.images.remove(tag_for(self.build))

    # -- repository builds ----------------------------------------------------------------------

    def from_repo(self) -> str:
        build = self.build
        self.workdir = tempfile.mkdtemp(prefix=f"oneoff-{build.id}-")
        checkout = os.path.join(self.workdir, "repo")
        self.clone(checkout)
        try:
            commit_id = self.git_output(checkout, "rev-parse", "--verify", "HEAD")
            message = self.git_output(checkout, "log", "-1", "--format=%B")
        except subprocess.CalledProcessError as exc:
            raise BuildError(
                f"the repository has no commit to build on {build.branch or 'its default branch'}"
            ) from exc
        Build.objects.filter(pk=build.pk).update(commit_id=commit_id, commit_message=message)
        subject = message.splitlines()[0] if message else ""
        self.log.line(f"==> Checked out commit {commit_id[:12]}: {subject}", system=True)
        context, dockerfile = self.resolve_paths(Path(checkout), commit_id[:12])
        return self.docker_build(context, dockerfile)

    def clone(self, checkout: str) -> None:
        build = self.build
        url = build.repo_url
        branch = build.branch
        commit = build.commit_id
        shown = USERINFO_RE.sub("***@", url)
        if commit and not COMMIT_RE.match(commit):
            raise BuildError(f"{commit!r} is not a commit id (4 to 64 hexadecimal characters)")
        if url.startswith("-"):
            raise BuildError(f"{shown!r} is not a git repository URL")
        branch_args = [f"--branch={branch}"] if branch else []
        where = f"commit {commit}" if commit else (f"branch {branch}" if branch else "HEAD")
        self.log.line(f"==> Cloning {shown} ({where})", system=True)
        if commit:
            self.git(["clone", "--no-checkout", *branch_args, "--", url, checkout], shown)
            self.git(["-C", checkout, "checkout", "--quiet", "--detach", commit], shown, commit)
        else:
            shallow = ["--depth=1", "--single-branch", "--no-tags"]
            self.git(["clone", *shallow, *branch_args, "--", url, checkout], shown)

    def git(self, args: list[str], shown_url: str, commit: str = "") -> None:
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": ":".join(settings.BUILD_GIT_PROTOCOLS),
            "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
            "LC_ALL": "C",
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
        output: list[str] = []

        def consume(text: str):
            output.append(text.rstrip("\n"))
            self.log.line(text.rstrip("\n"))

        def kill():
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

    def resolve_paths(self, repo: Path, commit: str) -> tuple[Path, Path]:
        """The build context folder and the Dockerfile, both inside the repository (symlinks
        resolved, so neither ``..`` nor a symlink can reach outside)."""
        repo = repo.resolve()
        service = self.service
        root = _inside(repo, repo, service.root_dir or ".", "rootDir")
        context = _inside(repo, root, service.docker_context or ".", "dockerContext")
        dockerfile = _inside(repo, root, service.dockerfile_path or "Dockerfile", "dockerfilePath")
        if not root.is_dir():
            raise BuildError(f"rootDir {service.root_dir!r} is not a folder in the repository")
        if not context.is_dir():
            raise BuildError(
                f"dockerContext {service.docker_context!r} is not a folder in the repository "
                f"(commit {commit})"
            )
        if not dockerfile.is_file():
            raise BuildError(
                f"no Dockerfile at {service.dockerfile_path or 'Dockerfile'!r} in the repository "
                f"(commit {commit}); set dockerfilePath to where it is"
            )
        self.log.line(
            f"==> Building with {dockerfile.relative_to(repo)} in context "
            f"{context.relative_to(repo).as_posix() or '.'}/",
            system=True,
        )
        return context, dockerfile

    def docker_build(self, context: Path, dockerfile: Path) -> str:
        build = self.build
        errors: list[str] = []
        image_ids: list[str] = []

        def consume(chunk: dict):
            if "stream" in chunk:
                self.log.write(chunk["stream"])
            elif chunk.get("error"):
                self.log.end_partial()
                errors.append(chunk["error"].strip())
                self.log.line(chunk["error"].strip())
            elif chunk.get("aux", {}).get("ID"):
                image_ids.append(chunk["aux"]["ID"])
            elif chunk.get("status") and "progress" not in chunk:
                prefix = f"{chunk['id']}: " if chunk.get("id") else ""
                self.log.line(prefix + chunk["status"])

        api = self.client.api
        with _Response(api) as response:

            def produce():
                response.thread = threading.current_thread()
                return api.build(
                    path=str(context),
                    dockerfile=str(dockerfile),
                    tag=tag_for(build),
                    decode=True,
                    rm=True,
                    forcerm=True,
                    pull=False,
                    network_mode=settings.BUILD_NETWORK,
                    labels={
                        "oneoff.instance": settings.ONEOFF_INSTANCE,
                        "oneoff.service": build.service_id,
                        "oneoff.build": build.id,
                    },
                )

            try:
                self.pump(produce, consume, response.close)
            except (APIError, DockerException) as exc:
                raise BuildError(f"docker build failed: {_explain(exc)}") from exc
        if errors:
            raise BuildError(f"docker build failed: {errors[-1]}")
        try:
            return self.client.images.get(tag_for(build)).id
        except ImageNotFound as exc:
            raise BuildError("docker build ended without producing an image") from exc


def _inside(repo: Path, base: Path, relative: str, field: str) -> Path:
    if os.path.isabs(relative):
        raise BuildError(f"{field} {relative!r} must be a path relative to the repository")
    path = (base / relative).resolve()
    if not path.is_relative_to(repo):
        raise BuildError(f"{field} {relative!r} points outside the repository")
    return path


def _userinfo(url: str) -> str:
    match = USERINFO_RE.search(url or "")
    return match.group(0) if match else ""


def _git_error(output: list[str]) -> str:
    fatal = [line for line in output if line.startswith(("fatal:", "error:"))]
    lines = fatal or [line for line in output if line.strip()]
    if not lines:
        return "git exited with an error"
    text = lines[0] if fatal else lines[-1]  # git's first fatal line is the most specific
    for prefix in ("fatal: ", "error: "):
        text = text.removeprefix(prefix)
    return USERINFO_RE.sub("***@", text)


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


# -- periodic work ---------------------------------------------------------------------------


def sweep_builds(*, now=None, batch: int = 100) -> dict[str, int]:
    """Fail builds whose worker stopped heart-beating, and re-send the oldest queued build of
    each service that has waited a while with nothing building (its message may be lost)."""
    now = now or timezone.now()
    failed = 0
    stale = Build.objects.filter(
        status=BuildStatus.BUILDING, heartbeat_at__lt=now - timedelta(seconds=HEARTBEAT_STALE)
    ).values_list("pk", flat=True)[:batch]
    for pk in list(stale):
        failed += Build.objects.filter(
            pk=pk,
            status=BuildStatus.BUILDING,
            heartbeat_at__lt=now - timedelta(seconds=HEARTBEAT_STALE),
        ).update(
            status=BuildStatus.FAILED,
            finished_at=now,
            reason=(
                "the worker running this build stopped before the build finished; start a new build"
            ),
        )
    waiting = (
        Build.objects.filter(
            status=BuildStatus.QUEUED, created_at__lt=now - timedelta(seconds=QUEUED_STALE)
        )
        .exclude(service__builds__status=BuildStatus.BUILDING)
        .order_by("service_id", "created_at")
        .values_list("service_id", "pk")[: batch * 10]
    )
    resent: dict[str, str] = {}
    for service_id, pk in waiting:
        resent.setdefault(service_id, pk)
    for pk in list(resent.values())[:batch]:
        enqueue_build(pk)
    return {"failed": failed, "resent": len(resent)}


def cleanup_images(*, client=None, keep: int | None = None) -> list[str]:
    """Remove the image tags of old builds. Per service, keep the latest ``BUILD_KEEP_IMAGES``
    (at least 1) successful builds and every build an unfinished job still uses. Removing a
    tag deletes the image once nothing else (another tag, a container) holds it; an image in
    use is left for a later run. Returns the tags removed."""
    keep = max(1, settings.BUILD_KEEP_IMAGES if keep is None else keep)
    in_use = set(Job.objects.unfinished().values_list("build_id", flat=True))
    candidates = Build.objects.filter(
        status__in=BUILD_FINISHED, image_removed_at__isnull=True
    ).exclude(image_tag="")
    removed: list[str] = []
    service_ids = set(candidates.values_list("service_id", flat=True))
    if not service_ids:
        return removed
    client = client or docker.from_env(timeout=60)
    for service_id in sorted(service_ids):
        latest = Build.objects.filter(service_id=service_id, status=BuildStatus.SUCCEEDED)
        kept = set(latest.order_by("-finished_at", "-id").values_list("id", flat=True)[:keep])
        for build in candidates.filter(service_id=service_id).exclude(pk__in=kept | in_use):
            try:
                client.images.remove(build.image_tag)
            except NotFound:
                pass
            except APIError as exc:
                # 409: a container still uses it; try again on the next run.
                logger.info("cleanup: keeping %s for now: %s", build.image_tag, _explain(exc))
                continue
            Build.objects.filter(pk=build.pk).update(image_removed_at=timezone.now())
            removed.append(build.image_tag)
    return removed

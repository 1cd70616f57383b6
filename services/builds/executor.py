"""Running one claimed build to its end: succeeded, failed or canceled.

``BuildRun.run`` resolves an image (``images``) or clones a repository (``git``) and builds it
in the isolated builder (``images``, ``builder``), writing output to the build's log through
``BuildLog``.
Every step that blocks (git, a pull, the builder) runs through ``BuildRun.pump``, which
keeps the heart beating, polls for a cancel request and the build timeout, and kills the step
when either comes.
"""

import logging
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import docker
from django.conf import settings
from django.db.models import Max
from django.utils import timezone
from docker import DockerClient
from docker.errors import DockerException

from services.builds.errors import BuildError, BuildStopped
from services.builds.git import GitSteps
from services.builds.images import ImageSteps, tag_for
from services.models import Build, BuildLogLine, BuildStatus, EnvVar
from services.transitions import transition

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.25  # seconds between log flushes while output arrives
CANCEL_POLL_INTERVAL = 0.5  # seconds between checks for a cancel request
HEARTBEAT_INTERVAL = 10  # seconds between heart-beats of a running build (queue.HEARTBEAT_STALE)
STOP_WAIT = 5  # seconds to wait for a killed git, pull or builder to end
LINE_MAX_CHARS = 8 * 1024
LOG_BATCH = 500


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


class BuildRun(GitSteps, ImageSteps):
    """One claimed build, run to its end: succeeded, failed or canceled."""

    def __init__(self, build: Build, *, client: DockerClient | None = None) -> None:
        self.build = build
        self.service = build.service
        self._client = client
        self.log = BuildLog(
            build, mask=f"{build.repo_credential}@" if build.repo_credential else ""
        )
        self.deadline = time.monotonic() + settings.BUILD_TIMEOUT
        self.stop_reason = ""
        self.next_poll = 0.0
        self.next_heartbeat = time.monotonic() + HEARTBEAT_INTERVAL
        self.workdir = ""

    @property
    def client(self) -> DockerClient:
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
                self.succeed(image_id)
        finally:
            if self.workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def end(
        self,
        status: str,
        reason: str = "",
        *,
        image_id: str = "",
        image_tag: str = "",
        registry_image: str = "",
    ) -> None:
        # Git and engine errors are shown to viewers, who may not read the service's env values.
        reason = EnvVar.scrub(reason, self.service.env_dict().values()) if reason else reason
        if status == BuildStatus.SUCCEEDED:
            self.log.line(f"==> Build succeeded: image {image_id} ({image_tag})", system=True)
        elif status == BuildStatus.FAILED:
            self.log.line(f"==> Build failed: {reason}", system=True)
        else:
            self.log.line(f"==> Build canceled: {reason}", system=True)
        self.log.flush()
        logger.info("build %s of %s %s", self.build.id, self.service.name, status)
        transition(
            Build.objects.filter(pk=self.build.pk, status=BuildStatus.BUILDING),
            status=status,
            reason=reason,
            image_id=image_id,
            image_tag=image_tag,
            registry_image=registry_image,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )

    def succeed(self, image_id: str) -> None:
        """End a build that made ``image_id``: pushed to JOB_REGISTRY first when one is set (a
        push that fails, times out or is canceled ends the build like any other step)."""
        registry_image = ""
        if settings.JOB_REGISTRY:
            try:
                registry_image = self.push_to_registry(image_id)
            except BuildStopped:
                self.untag()
                self.end_stopped()
                return
            except BuildError as exc:
                self.untag()
                self.end(BuildStatus.FAILED, self.log.clean(str(exc)))
                return
            except Exception as exc:
                logger.exception("build %s: the push to the job registry crashed", self.build.id)
                self.untag()
                self.end(
                    BuildStatus.FAILED,
                    "the push to the job registry stopped on an internal error: "
                    + type(exc).__name__,
                )
                return
        self.end(
            BuildStatus.SUCCEEDED,
            image_id=image_id,
            image_tag=tag_for(self.build),
            registry_image=registry_image,
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

    def pump[T](
        self,
        produce: Callable[[], Iterable[T]],
        consume: Callable[[T], object],
        kill: Callable[[], object],
        *,
        deadline: float | None = None,
    ) -> None:
        """Run ``produce()`` (an iterable that blocks, such as git's output or the builder's
        output) in a reader thread; hand each item to ``consume`` in this thread, flush the log
        every 250 ms, and ``kill()`` the producer when the build is canceled or runs out of
        time (then raise ``BuildStopped``). An error of the producer is raised here."""
        items: queue.Queue = queue.Queue()
        done = object()
        failure: list[BaseException] = []

        def reader() -> None:
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
        return self.isolated_build(context, dockerfile, Path(self.workdir))

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


def _inside(repo: Path, base: Path, relative: str, field: str) -> Path:
    if os.path.isabs(relative):
        raise BuildError(f"{field} {relative!r} must be a path relative to the repository")
    path = (base / relative).resolve()
    if not path.is_relative_to(repo):
        raise BuildError(f"{field} {relative!r} points outside the repository")
    return path

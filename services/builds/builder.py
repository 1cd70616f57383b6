"""The isolated builder: buildah, with one image store per workspace and limits per build.

Why not ``docker build`` on the engine jobs run on: its builder resolves ``FROM``, ``COPY --from``
and ``--mount=from`` against the engine's whole image store, where every workspace's builds live,
so any Dockerfile could read any other workspace's image by tag, id or id prefix. A blacklist of
names cannot close that (build arguments, prefixes, digests). Here each workspace has its own
buildah store (``BUILD_STORAGE_DIR/<workspace id>``), and a build runs with ``--pull-never``:
it can name only what is in its workspace's store, which holds the base images the admin allows,
the workspace's own images and the registry images it pulled (``ImageSteps`` puts them there
before the build, by the rules of ``services.image_refs``). The result is copied to the engine
jobs run on under ``oneoff/<service>:<build>`` and jobs run it by the id the build recorded.

Each ``RUN`` step is a runc container with no network (``BUILD_NETWORK``), Docker's default
capabilities less NET_RAW, MKNOD and AUDIT_WRITE, a memory and CPU limit (``BUILD_MEMORY_MB``,
``BUILD_CPUS``), and a process limit (``BUILD_PIDS``) from a cgroup made for the build, which also
lets a cancel kill every process of the build at once.
"""

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from services.builds.errors import BuildError

logger = logging.getLogger(__name__)

# Docker's default capabilities, less NET_RAW (raw sockets), MKNOD (device nodes) and
# AUDIT_WRITE: what package managers and compilers in a Dockerfile need, and no more.
CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "SETFCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "oneoff-builds"


def runtime() -> str:
    """The OCI runtime for RUN steps: ``BUILD_RUNTIME``, else the runc Docker's packages bring
    (buildah's default, crun, refuses hosts with cgroup v1 and v2 mixed)."""
    return settings.BUILD_RUNTIME or shutil.which("runc") or "/usr/sbin/runc"


def buildah() -> str:
    path = shutil.which(settings.BUILDAH)
    if path is None:
        raise BuildError(
            f"the builder ({settings.BUILDAH}) is not installed on this worker; install "
            "Debian's buildah package"
        )
    return path


class BuildCgroup:
    """A cgroup for one build's RUN steps, with its process limit: ``--cgroup-parent``.

    On cgroup v1 the pids controller's folder is made (runc makes the others under the same
    path); on v2 the one folder, with the pids controller enabled for it. When the host's cgroups
    cannot be written (a container without its own cgroup namespace), the build runs without a
    process limit and the build log says so."""

    def __init__(self, name: str) -> None:
        self.path = f"/{CGROUP_PARENT}/{name}"
        self.folders: list[Path] = []
        self.unified = (CGROUP_ROOT / "cgroup.controllers").exists()

    def create(self, pids: int) -> bool:
        try:
            if self.unified:
                parent = CGROUP_ROOT / CGROUP_PARENT
                parent.mkdir(exist_ok=True)
                with contextlib.suppress(OSError):
                    (CGROUP_ROOT / "cgroup.subtree_control").write_text("+pids")
                with contextlib.suppress(OSError):
                    (parent / "cgroup.subtree_control").write_text("+pids")
                folder = parent / self.path.rsplit("/", 1)[1]
            else:
                folder = CGROUP_ROOT / "pids" / self.path.lstrip("/")
            folder.mkdir(parents=True, exist_ok=True)
            self.folders.append(folder)
            (folder / "pids.max").write_text(str(pids))
            return True
        except OSError as exc:
            logger.warning("build cgroup %s: no process limit (%s)", self.path, exc)
            return False

    def pids(self) -> list[int]:
        found: list[int] = []
        for folder in self._all_folders():
            with contextlib.suppress(OSError, ValueError):
                found += [int(p) for p in (folder / "cgroup.procs").read_text().split()]
        return found

    def kill(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def _all_folders(self) -> list[Path]:
        if self.unified:
            return self.folders
        # runc makes the build's folder in every v1 controller it uses.
        relative = self.path.lstrip("/")
        return [c / relative for c in CGROUP_ROOT.iterdir() if (c / relative).is_dir()]

    def remove(self) -> None:
        self.kill()
        for folder in self._all_folders():
            for child in sorted(folder.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    child.rmdir()


class Store:
    """A buildah store: a workspace's image store (``Store(workspace_id)``: the images its builds
    may name), or one build's own store (``store.for_build(build_id)``), where that build's
    containers live and which reads images from the workspace's store. A build's store is
    removed whole when the build ends (``discard``), so a killed build leaves nothing mounted
    and never touches a concurrent build's containers."""

    def __init__(self, workspace_id: str, *, build_id: str = "") -> None:
        self.workspace_root = Path(settings.BUILD_STORAGE_DIR) / workspace_id
        self.root = self.workspace_root / "builds" / build_id if build_id else self.workspace_root
        self.build_id = build_id

    def for_build(self, build_id: str) -> "Store":
        return Store(self.workspace_root.name, build_id=build_id)

    def command(self, *args: str) -> list[str]:
        options = []
        if self.build_id:
            images = self.workspace_root / "storage"
            images.mkdir(parents=True, exist_ok=True, mode=0o700)  # a store with nothing yet
            options = ["--storage-opt", f"additionalimagestore={images}"]
        return [
            buildah(),
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            settings.BUILD_STORAGE_DRIVER,
            *options,
            *args,
        ]

    def discard_stale(self, running: set[str]) -> None:
        """Remove the stores of this workspace's builds that are not ``running`` (left by a
        worker that died mid-build)."""
        folder = self.workspace_root / "builds"
        if folder.is_dir():
            for child in folder.iterdir():
                if child.name not in running:
                    self.for_build(child.name).discard()

    def discard(self) -> None:
        """Remove a build's store: its containers (unmounting them), then the folder."""
        if not self.build_id or not self.root.exists():
            return
        with contextlib.suppress(BuildError):
            self.run("rm", "--all", timeout=120)
        with contextlib.suppress(BuildError):
            self.run("rmi", "--all", "--force", timeout=120)
        mounts = [
            line.split()[1]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if len(line.split()) > 1 and line.split()[1].startswith(str(self.root))
        ]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def run(self, *args: str, timeout: float = 600) -> str:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            done = subprocess.run(
                self.command(*args),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_environment(),
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"the builder did not answer within {timeout} s") from exc
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise BuildError(f"the builder failed: {message[-1] if message else done.returncode}")
        return done.stdout.strip()

    def has(self, image_id: str) -> bool:
        try:
            self.run("inspect", "--type", "image", "--format", "{{.FromImageID}}", _hex(image_id))
        except BuildError:
            return False
        return True

    def seed(self, image_id: str, name: str) -> None:
        """Copy the engine's image ``image_id`` into this store (unless it is here) as ``name``.

        One seed at a time per store (a file lock): two builds of a workspace seeding the same
        image at once made two pulls, and the first one's clean-up of the temporary name made
        the second fail with "locating pulled image … image not known"."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.root / "seed.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._seed(image_id, name)

    def _seed(self, image_id: str, name: str) -> None:
        pulled = not self.has(image_id)
        if pulled:
            self.run("pull", "--quiet", f"docker-daemon:{image_id}")
        self.run("tag", _hex(image_id), name)
        if pulled:  # docker-daemon:<id> also named the copy docker.io/library/sha256:<hex>
            with contextlib.suppress(BuildError):
                self.run("rmi", f"docker.io/library/sha256:{_hex(image_id)}")

    def build_command(
        self,
        *,
        context: Path,
        dockerfile: Path,
        iidfile: Path,
        labels: dict[str, str],
        cgroup: BuildCgroup | None,
    ) -> list[str]:
        cpus = settings.BUILD_CPUS
        args = [
            "bud",
            "--pull-never",
            "--isolation",
            "oci",
            "--runtime",
            runtime(),
            "--network",
            settings.BUILD_NETWORK,
            "--memory",
            f"{settings.BUILD_MEMORY_MB}m",
            "--memory-swap",
            f"{settings.BUILD_MEMORY_MB}m",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            str(int(cpus * 100000)),
            "--cap-drop",
            "ALL",
            "--cap-add",
            ",".join(CAPABILITIES),
            "--layers=false",
            "--force-rm",
            "--format",
            "docker",
            "--iidfile",
            str(iidfile),
            "--file",
            str(dockerfile),
        ]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        if cgroup is not None:
            args += ["--cgroup-parent", cgroup.path]
        return self.command(*args, str(context))

    def stream(self, command: list[str]) -> "Process":
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Process(command)

    def push(self, image_id: str, tag: str) -> None:
        """Copy the built image to the engine jobs run on, as ``tag``."""
        self.run("push", "--quiet", _hex(image_id), f"docker-daemon:{tag}", timeout=1800)


class Process:
    """A running ``buildah bud``: its output line by line, and a kill for cancel and timeout."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_environment(),
        )

    def lines(self) -> Iterator[str]:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            yield raw.decode("utf-8", "replace")
        self.process.wait()

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)


def _hex(image_id: str) -> str:
    return image_id.removeprefix("sha256:")


def _environment() -> dict[str, str]:
    # buildah reads DOCKER_HOST for the docker-daemon: transport; nothing else of the worker's
    # environment (its secrets) reaches it.
    keep = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep}

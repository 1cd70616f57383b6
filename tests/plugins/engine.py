"""A Docker Engine of the test session's own, which tests may stop and restart.

The machine's dockerd is shared (other test runs and people use it): it is never restarted.
``private_engine`` starts another ``dockerd`` with its own socket, data root, exec root and pid
file under a temporary folder (and the no-bridge flags, see MACHINE.md), imports the busybox
test image into it, and stops it (and its containers) at the end of the session. ``restart``
stops it as an operator's ``systemctl restart docker`` does (SIGTERM, waiting for it to exit) and
starts it again, with or without ``--live-restore``.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import missing_part

ROOT = Path(__file__).resolve().parents[2]


class PrivateEngine:
    def __init__(self, folder: Path):
        self.folder = folder
        self.socket = folder / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.log_path = folder / "dockerd.log"
        self.process: subprocess.Popen | None = None
        self.live_restore = False
        self.image_id = ""

    def env(self) -> dict:
        return {**os.environ, "DOCKER_HOST": self.url}

    def start(self, live_restore: bool = True) -> "PrivateEngine":
        assert self.process is None or self.process.poll() is not None, "already running"
        self.live_restore = live_restore
        flags = ["--live-restore"] if live_restore else []
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    shutil.which("dockerd") or "dockerd",
                    f"--host={self.url}",
                    f"--data-root={self.folder / 'data'}",
                    f"--exec-root={self.folder / 'exec'}",
                    f"--pidfile={self.folder / 'dockerd.pid'}",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-forward=false",
                    "--containerd-namespace=oneoff-test",
                    "--containerd-plugins-namespace=oneoff-test-plugins",
                    *flags,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the private dockerd did not start:\n{self.tail()}")
            time.sleep(0.1)
        return self

    def answers(self) -> bool:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env=self.env(),
            capture_output=True,
            timeout=10,
        )
        return result.returncode == 0

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM and wait: the engine stops its containers first unless it live-restores."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def restart(self, live_restore: bool = True, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start(live_restore=live_restore)

    def docker(self, *args: str) -> str:
        result = subprocess.run(
            ["docker", *args], env=self.env(), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@pytest.fixture(scope="session")
def private_engine():
    """A dockerd of this session's own (live-restore on; ``restart`` may turn it off), with
    the busybox test image (``image_id``)."""
    if not shutil.which("dockerd") or not shutil.which("docker"):
        missing_part("dockerd (Debian's docker.io) is needed for a private Docker Engine")
    if os.geteuid() != 0:
        missing_part("a private Docker Engine needs root")
    # A short path: the socket's name must fit a sockaddr_un (108 bytes).
    folder = Path(tempfile.mkdtemp(prefix="oneoff-engine-"))
    engine = PrivateEngine(folder)
    try:
        engine.start(live_restore=True)
        rootfs = folder / "busybox-root"
        subprocess.run(
            [str(ROOT / "scripts" / "make-busybox-image.sh"), "oneoff-test/busybox:latest"],
            check=True,
            env={**engine.env(), "ROOTFS": str(rootfs)},
            capture_output=True,
        )
        engine.image_id = engine.docker(
            "image", "inspect", "--format", "{{.Id}}", "oneoff-test/busybox:latest"
        )
        yield engine
    finally:
        if engine.process is not None and engine.process.poll() is None:
            ids = subprocess.run(
                ["docker", "ps", "-aq"], env=engine.env(), capture_output=True, text=True
            ).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], env=engine.env(), capture_output=True)
        engine.stop()
        # dockerd makes its data root a mount point of its own and leaves it mounted.
        for mounted in ("data", "exec"):
            subprocess.run(["umount", "-l", str(folder / mounted)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

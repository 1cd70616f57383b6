"""The bare-machine first run: scripts/ensure-system.sh names exactly what a non-root user must
install (as root on Debian it installs it; CI's machine has it all, so that branch runs in
.ci/run and `make run`)."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_as_non_root_without(tmp_path: Path, keep: list[str]) -> subprocess.CompletedProcess:
    """ensure-system.sh with a PATH holding only ``keep`` and an ``id`` that says uid 1000."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    for tool in keep:
        for folder in ("/usr/bin", "/bin", "/usr/local/bin"):
            if os.path.exists(f"{folder}/{tool}"):
                (bin_dir / tool).symlink_to(f"{folder}/{tool}")
                break
    return subprocess.run(
        ["/bin/bash", "scripts/ensure-system.sh"],
        cwd=ROOT,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_non_root_user_is_told_exactly_which_packages_to_install(tmp_path):
    result = run_as_non_root_without(tmp_path, keep=["cat", "seq", "sleep", "tail"])
    assert result.returncode == 1
    missing = "docker.io git" if os.path.exists("/bin/busybox") else "docker.io git busybox-static"
    assert f"missing system packages: {missing}" in result.stderr
    assert f"apt-get install {missing}" in result.stderr
    assert "installing" not in result.stdout  # it never tries to install as non-root

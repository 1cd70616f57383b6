"""Repository builds: the isolated builder beside a bare `docker build` of the same context.

What isolation costs (issue 13): a build runs in buildah with its workspace's own image store
(base image copied in once), its own store per build, a cgroup and the image copied to the
engine afterwards. The baseline, in the same run, is the classic `docker build` of the same
Dockerfile and context on the engine itself (no isolation), through the Docker SDK.

Three figures, medians over N builds each: (a) a small build (FROM busybox, COPY, RUN) through
Oneoff (git clone included) and bare; (b) the same with a 20 MB context file; (c) the first
build of a new workspace (its store is empty: the base image is copied in). It makes and drops
its own database, oneoff_bench_build. `--quick` runs 2 builds of each.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import with_own_database

BASE = "oneoff-test/busybox:latest"
ROOT = Path(__file__).resolve().parent.parent


def ensure_base(client) -> None:
    try:
        client.images.get(BASE)
    except Exception:
        root = tempfile.mkdtemp(prefix="busybox-root-")
        subprocess.run(
            [str(ROOT / "scripts" / "make-busybox-image.sh"), BASE],
            check=True,
            env={**os.environ, "ROOTFS": root},
        )


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} ms"


def run(args) -> int:
    import django

    django.setup()
    import docker
    from django.conf import settings
    from django.core.management import call_command

    from services.builds import queue as builds
    from services.management.commands.bootstrap_demo import git
    from services.models import BuildStatus, Service, Workspace

    call_command("migrate", verbosity=0)
    client = docker.from_env(timeout=120)
    ensure_base(client)
    work = Path(tempfile.mkdtemp(prefix="oneoff-bench-build-"))
    settings.BUILD_LOCAL_REPOS_DIR = work / "repos"
    settings.BUILD_STORAGE_DIR = work / "builders"
    settings.BUILD_BASE_IMAGES = [BASE]
    dockerfile = f"FROM {BASE}\nCOPY . /app\nRUN ls /app > /listing && echo built\n"

    def workspace_with_repo(name: str, big: bool) -> tuple[Service, Path]:
        workspace = Workspace.objects.create(name=name)
        repo = settings.BUILD_LOCAL_REPOS_DIR / workspace.id / "app"
        repo.mkdir(parents=True)
        (repo / "Dockerfile").write_text(dockerfile)
        (repo / "app.txt").write_text("hello\n")
        if big:
            (repo / "data.bin").write_bytes(os.urandom(20 * 1024 * 1024))
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "one")
        service = Service.objects.create(
            workspace=workspace,
            name="app",
            type="web_service",
            plan_id="plan-srv-006",
            repo_url=f"file://{repo}",
            branch="main",
        )
        return service, repo

    def oneoff_build(service: Service) -> float:
        started = time.perf_counter()
        build = builds.run_build(builds.request_build(service).id, client=client)
        elapsed = time.perf_counter() - started
        assert build.status == BuildStatus.SUCCEEDED, build.reason
        client.images.remove(build.image_tag)
        return elapsed

    def bare_build(repo: Path) -> float:
        started = time.perf_counter()
        image, _ = client.images.build(path=str(repo), rm=True, forcerm=True, network_mode="none")
        elapsed = time.perf_counter() - started
        client.images.remove(image.id, force=True)
        return elapsed

    rows = []
    for label, big in (("small context", False), ("20 MB context", True)):
        service, repo = workspace_with_repo(f"bench-{label}", big)
        oneoff_build(service)  # warm: the workspace's store gets its base image
        bare_build(repo)
        ours = [oneoff_build(service) for _ in range(args.builds)]
        bare = [bare_build(repo) for _ in range(args.builds)]
        rows.append((label, ours, bare))
    first = []
    for n in range(args.builds):
        service, repo = workspace_with_repo(f"bench-first-{n}", False)
        first.append(oneoff_build(service))
    bare_first = [bare_build(repo) for _ in range(args.builds)]
    rows.append(("first build of a workspace", first, bare_first))

    print(f"  {'build':<28} {'Oneoff (isolated)':>18} {'bare docker build':>18}  ratio")
    for label, ours, bare in rows:
        ratio = statistics.median(ours) / statistics.median(bare)
        print(f"  {label:<28} {median_ms(ours):>18} {median_ms(bare):>18}  {ratio:4.2f}x")
    print("  (Oneoff's figure includes the git clone and the copy of the image to the engine)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.builds = 2 if args.quick else 10
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    return with_own_database("oneoff_bench_build", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

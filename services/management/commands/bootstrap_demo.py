"""``make run``'s setup: the demo workspace, its admin, and the example service built from
``examples/demo`` through the normal build path (a ``file://`` git repository in the demo
workspace's folder of ``BUILD_LOCAL_REPOS_DIR``, by default ``var/repos/<workspace id>/``)."""

import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser

from services.builds.git import local_root
from services.builds.queue import request_build, run_build
from services.models import BuildStatus, Membership, Plan, Role, Service, Workspace

DEMO_EMAIL = "admin@example.com"
DEMO_WORKSPACE = "Demo"
EXAMPLE_NAME = "example"
EXAMPLE_SOURCE = settings.BASE_DIR / "examples" / "demo"
BASE_IMAGE = "oneoff/busybox:latest"
GIT_IDENTITY = ["-c", "user.name=Oneoff", "-c", "user.email=oneoff@localhost"]


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` as Oneoff (tests commit to their repositories with it too)."""
    result = subprocess.run(
        ["git", *GIT_IDENTITY, "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def sync_example_repo(repo: Path, source: Path = EXAMPLE_SOURCE) -> str:
    """Make ``repo`` a git repository whose ``main`` holds a copy of ``source`` (committing only
    when the copy changed) and return its head commit."""
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, timeout=60)
    for child in repo.iterdir():
        if child.name == ".git":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    shutil.copytree(source, repo, dirs_exist_ok=True, symlinks=True)
    git(repo, "add", "--all")
    if git(repo, "status", "--porcelain"):
        git(repo, "commit", "-q", "-m", "Example service from examples/demo")
    return git(repo, "rev-parse", "HEAD")


def ensure_base_image() -> str:
    """Make the example's base image offline from Debian's busybox if the engine lacks it.
    Returns a problem to report, or "" when the image is there."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        try:
            client.images.get(BASE_IMAGE)
            return ""
        except docker.errors.ImageNotFound:
            pass
    except Exception as exc:
        return f"no Docker Engine answers ({exc})"
    script = settings.BASE_DIR / "scripts" / "make-busybox-image.sh"
    result = subprocess.run(
        [str(script), BASE_IMAGE], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        return f"could not make {BASE_IMAGE}: {result.stderr.strip()[-500:]}"
    return ""


class Command(BaseCommand):
    help = (
        "Create the demo workspace and its admin (once), and the example service built from "
        "examples/demo; print how to sign in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://localhost:8000")
        parser.add_argument(
            "--build-now",
            action="store_true",
            help="Run the example's build here and wait for it, instead of leaving it to the "
            "Celery worker.",
        )

    def handle(self, *args: Any, url: str, build_now: bool = False, **options: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(username=DEMO_EMAIL).first()
        password = None
        if user is None:
            # Printed this once; never stored in plain text, never printed again.
            password = secrets.token_urlsafe(12)
            user = User(username=DEMO_EMAIL, email=DEMO_EMAIL, is_staff=True, is_superuser=True)
            user.set_password(password)
            user.save()
        workspace, _ = Workspace.objects.get_or_create(
            name=DEMO_WORKSPACE, defaults={"email": DEMO_EMAIL}
        )
        Membership.objects.get_or_create(
            workspace=workspace, user=user, defaults={"role": Role.ADMIN}
        )
        try:
            self.example_service(workspace, user, url, build_now)
        except (OSError, subprocess.SubprocessError) as exc:
            # Without git (or a writable var/) the rest of the demo still works.
            self.stderr.write(f"oneoff: could not set up the example service: {exc}")
        where = f"(workspace {workspace.name}, {workspace.id}; admin at {url}/admin/)"
        if password is not None:
            self.stdout.write(
                f"Sign in at {url}/ as {DEMO_EMAIL} with password {password} {where}. "
                "This password is shown only now."
            )
        else:
            self.stdout.write(
                f"Sign in at {url}/ as {DEMO_EMAIL} {where}; the password was printed at the "
                f"first start. A new one: .venv/bin/python manage.py changepassword {DEMO_EMAIL}"
            )

    def example_service(self, workspace: Workspace, user: User, url: str, build_now: bool) -> None:
        # The one folder whose repositories the workspace's builds may clone by file://.
        repo = local_root(workspace.id) / EXAMPLE_NAME
        older = settings.BUILD_LOCAL_REPOS_DIR / EXAMPLE_NAME  # before folders per workspace
        if not repo.exists() and (older / ".git").is_dir():
            repo.parent.mkdir(parents=True, exist_ok=True)
            older.rename(repo)
        head = sync_example_repo(repo)
        service, created = Service.objects.get_or_create(
            workspace=workspace,
            name=EXAMPLE_NAME,
            defaults={
                "type": "background_worker",
                "plan": Plan.objects.get(id="plan-srv-006"),
                "repo_url": repo.resolve().as_uri(),
                "branch": "main",
                "dockerfile_path": "./Dockerfile",
                "docker_context": ".",
            },
        )
        if not created and (
            service.repo_url.endswith("/example-repo")
            or service.repo_url == older.resolve().as_uri()
        ):
            # An example made by an older version, from var/example-repo or var/repos/example:
            # point it at the workspace's folder.
            service.repo_url = repo.resolve().as_uri()
            service.save(update_fields=["repo_url"])
        problem = ensure_base_image()
        if problem:
            self.stderr.write(f"oneoff: the example service cannot be built yet: {problem}")
        service_builds = service.builds.all()
        latest = service.latest_successful_build()
        unfinished = (BuildStatus.QUEUED, BuildStatus.BUILDING)
        pending = service_builds.filter(status__in=unfinished).first()
        if pending is not None:
            build = pending
        elif latest is not None and latest.commit_id == head:
            self.stdout.write(
                f"Example service {service.name} ({service.id}) is built: {latest.id}, "
                f"commit {head[:12]}; run a job such as `migrate` from {url}/"
            )
            return
        else:
            build = request_build(service, user=user)
        if build_now:
            ran = run_build(build.id)
            assert ran is not None  # None only for a build that does not exist
            self.stdout.write(
                f"Example service {service.name} ({service.id}): build {ran.id} {ran.status}"
                + (f": {ran.reason}" if ran.reason else "")
            )
        else:
            self.stdout.write(
                f"Example service {service.name} ({service.id}): build {build.id} is "
                f"{build.status}; the worker builds it, then jobs such as `migrate` can run"
            )

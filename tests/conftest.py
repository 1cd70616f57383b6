"""Personas and makers shared by every test.

Personas: ``owner`` (admin of ``workspace``), ``developer``, ``viewer``, and ``outsider`` (admin
of another workspace). Makers build services and builds with sane defaults. Fixtures that
several test folders use are in the plugin modules of tests/plugins/ (``pytest_plugins`` below);
plain helpers are in tests/helpers.py.
"""

import importlib
import os
import shutil
import subprocess
import time

import pytest
from django.utils import timezone

from services.models import Build, BuildStatus, Plan, Role, Service, Workspace
from tests.helpers import TEST_EGRESS_ALLOW, make_member, missing_part, render_client

pytest_plugins = [
    "tests.plugins.engine",
    "tests.plugins.jobs",
    "tests.plugins.registry",
    "tests.plugins.swarm_lab",
    "tests.plugins.syslog",
    "tests.plugins.webhooks",
    "tests.plugins.worker",
]


def pytest_collection_modifyitems(items):
    """Every transactional test restores the seeded data with a serialized rollback. A plain
    transactional test's flush re-creates content types, and the next serialized test then
    fails to load its snapshot (duplicate key on django_content_type)."""
    for item in items:
        mark = item.get_closest_marker("django_db")
        if mark and mark.kwargs.get("transaction") and "serialized_rollback" not in mark.kwargs:
            kwargs = {**mark.kwargs, "serialized_rollback": True}
            item.add_marker(pytest.mark.django_db(*mark.args, **kwargs), append=False)


@pytest.fixture(scope="session", autouse=True)
def _flush_retries_a_deadlock():
    """A transactional test's flush TRUNCATEs every table while a live worker (a module-wide
    subprocess) may be reading two of them; PostgreSQL can then pick the flush as a deadlock's
    victim. The worker's next pass would simply read again: so does the flush."""
    from django.db.backends.postgresql.operations import DatabaseOperations
    from django.db.utils import OperationalError
    from psycopg import errors

    flush = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return flush(self, sql_list)
            except OperationalError as exc:
                if not isinstance(exc.__cause__, errors.DeadlockDetected) or attempt == 4:
                    raise
                time.sleep(0.2)

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    DatabaseOperations.execute_sql_flush = flush


TEST_BASE_IMAGES = "oneoff/busybox:latest,oneoff-test/busybox:latest"


@pytest.fixture(scope="session", autouse=True)
def _test_settings(tmp_path_factory):
    """Settings every test runs with, in this process and in the workers it starts: the test's
    busybox is a base image, and builders keep their stores in the session's folder."""
    from django.test import override_settings

    storage = tmp_path_factory.mktemp("builders")
    values = {"BUILD_BASE_IMAGES": TEST_BASE_IMAGES, "BUILD_STORAGE_DIR": str(storage)}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    with override_settings(
        BUILD_BASE_IMAGES=TEST_BASE_IMAGES.split(","), BUILD_STORAGE_DIR=storage
    ):
        yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    """Loopback is allow-listed for egress (services.egress), where every test server listens;
    a test of the egress rules sets ``settings.EGRESS_ALLOW = []``, the default."""
    settings.EGRESS_ALLOW = TEST_EGRESS_ALLOW


@pytest.fixture(autouse=True)
def _seeded_plans(request):
    """Plans come from a data migration, and a transactional test's flush removes them; the
    serialized rollback restores them, but seed them again in case a test ran without one."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        return
    request.getfixturevalue("transactional_db")
    from django.apps import apps

    importlib.import_module("services.migrations.0002_seed_plans").seed(apps, None)


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        missing_part(f"a Docker Engine is needed: {exc}")
    return client


@pytest.fixture(scope="session")
def busybox_image(docker_client, tmp_path_factory) -> str:
    """A tiny image made offline from Debian's static busybox (no registry is reachable)."""
    tag = "oneoff-test/busybox:latest"
    try:
        return docker_client.images.get(tag).id
    except Exception:
        pass
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        missing_part("Debian's busybox-static is needed to make the test image")
    root = tmp_path_factory.mktemp("busybox-root")
    subprocess.run(
        [os.path.join(os.path.dirname(__file__), "..", "scripts", "make-busybox-image.sh"), tag],
        check=True,
        env={**os.environ, "ROOTFS": str(root)},
    )
    return docker_client.images.get(tag).id


@pytest.fixture
def workspace(db):
    return Workspace.objects.create(name="Acme", email="ops@acme.test")


@pytest.fixture
def other_workspace(db):
    return Workspace.objects.create(name="Globex", email="ops@globex.test")


@pytest.fixture
def owner(workspace):
    return make_member(workspace, "alice@acme.test", Role.ADMIN)


@pytest.fixture
def developer(workspace):
    return make_member(workspace, "dave@acme.test", Role.DEVELOPER)


@pytest.fixture
def viewer(workspace):
    return make_member(workspace, "vera@acme.test", Role.VIEWER)


@pytest.fixture
def outsider(other_workspace):
    return make_member(other_workspace, "olga@globex.test", Role.ADMIN)


@pytest.fixture
def make_service(workspace):
    def make(ws=None, *, name=None, type="web_service", plan_id=None, **fields):
        ws = ws or workspace
        plan_id = plan_id or ("plan-crn-003" if type == "cron_job" else "plan-srv-006")
        count = Service.objects.count()
        return Service.objects.create(
            workspace=ws,
            name=name or f"svc-{count + 1}",
            type=type,
            plan=Plan.objects.get(id=plan_id),
            **fields,
        )

    return make


@pytest.fixture
def service(make_service):
    return make_service(name="web")


@pytest.fixture
def make_build():
    def make(service, *, status=BuildStatus.SUCCEEDED, image_id="sha256:" + "0" * 64, **fields):
        now = timezone.now()
        finished = status in (BuildStatus.SUCCEEDED, BuildStatus.FAILED, BuildStatus.CANCELED)
        return Build.objects.create(
            service=service,
            status=status,
            image_id=image_id if status == BuildStatus.SUCCEEDED else "",
            started_at=now,
            finished_at=now if finished else None,
            **fields,
        )

    return make


@pytest.fixture
def render(live_server, owner, workspace):
    """Render's generated client on a live Oneoff, as the workspace's admin."""
    with render_client(live_server, owner, workspace) as client:
        yield client

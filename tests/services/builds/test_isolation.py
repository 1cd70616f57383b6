"""Images belong to workspaces: another workspace's build image cannot be run or read by any
path (issue 13, point 1). Real engine, real builder, two workspaces."""

import pytest

from services.builds import queue as builds
from services.models import ApiKey, BuildStatus
from tests.helpers import BASE, ApiClient, assert_error

pytestmark = pytest.mark.docker

SECRET = "victim-secret-0123456789"


@pytest.fixture
def victim(repo_service, docker_client):
    """The first workspace's successful build, whose image holds a secret file."""
    service = repo_service({"Dockerfile": f"FROM {BASE}\nCOPY secret /secret\n", "secret": SECRET})
    build = builds.run_build(builds.request_build(service).id, client=docker_client)
    assert build.status == BuildStatus.SUCCEEDED, build.reason
    return build


@pytest.fixture
def attacker_repo(repo_service, other_workspace):
    """A repository service of the second workspace: ``attacker_repo(dockerfile)`` builds it."""

    def build(dockerfile: str, docker_client):
        service = repo_service({"Dockerfile": dockerfile}, ws=other_workspace)
        return builds.run_build(builds.request_build(service).id, client=docker_client)

    return build


def id_forms(build) -> list[str]:
    hexid = build.image_id.removeprefix("sha256:")
    return [build.image_tag, build.image_id, hexid, hexid[:12], hexid[:1]]


def test_the_api_refuses_another_workspaces_image_by_any_name(victim, outsider, other_workspace):
    key, secret = ApiKey.issue(outsider, other_workspace)
    api = ApiClient(secret, key)
    for ref in id_forms(victim):
        response = api.post(
            "/v1/services",
            {
                "type": "web_service",
                "name": f"steal-{len(ref)}",
                "ownerId": other_workspace.id,
                "image": {"ownerId": other_workspace.id, "imagePath": ref},
            },
        )
        assert_error(response, 400, field="image.imagePath")


def test_a_developer_cannot_build_another_workspaces_image(
    victim, make_service, other_workspace, docker_client
):
    from services.models import Membership, Role
    from tests.helpers import make_member

    service = make_service(other_workspace, name="img", image_ref=BASE)
    developer = make_member(other_workspace, "devon@globex.test", Role.DEVELOPER)
    assert Membership.objects.get(user=developer).role == Role.DEVELOPER
    key, secret = ApiKey.issue(developer, other_workspace)
    api = ApiClient(secret, key)
    for ref in id_forms(victim):
        response = api.post(f"/v1/services/{service.id}/builds", {"imageUrl": ref})
        assert_error(response, 400, field="imageUrl")


def test_an_image_build_of_a_stored_foreign_reference_fails(
    victim, make_service, other_workspace, docker_client
):
    # A reference stored before the rules (or written straight to the database) is refused when
    # the build runs, too: the build never looks the name up on the engine.
    service = make_service(other_workspace, name="img", image_ref=BASE)
    for ref in id_forms(victim):
        build = builds.run_build(
            builds.request_build(service, image_ref=ref).id, client=docker_client
        )
        assert build.status == BuildStatus.FAILED
        assert build.reason.startswith(f"image {ref!r} cannot be used: ")
        assert build.image_id == ""


@pytest.mark.parametrize(
    "dockerfile",
    [
        "FROM {tag}\n",
        "FROM {id}\n",
        "FROM {short}\n",
        f"FROM {BASE}\nCOPY --from={{tag}} /secret /stolen\n",
        f"FROM {BASE}\nCOPY --from={{id}} /secret /stolen\n",
        f"FROM {BASE}\nRUN --mount=type=bind,from={{short}},target=/v cat /v/secret\n",
    ],
)
def test_a_dockerfile_cannot_name_another_workspaces_image(
    victim, attacker_repo, docker_client, dockerfile
):
    hexid = victim.image_id.removeprefix("sha256:")
    text = dockerfile.format(tag=victim.image_tag, id=victim.image_id, short=hexid[:4])

    build = attacker_repo(text, docker_client)

    assert build.status == BuildStatus.FAILED
    assert "cannot be used" in build.reason
    assert SECRET not in "\n".join(build.log_lines.values_list("text", flat=True))


@pytest.mark.parametrize(
    "dockerfile",
    [
        # Names the Dockerfile scan cannot see (a default given at build time): the builder's own
        # store is all it can read, so the build fails there, whatever the name.
        "ARG B\nFROM ${{B:-{tag}}}\n",
        "ARG B\nFROM ${{B:-{short}}}\n",
        "FROM " + BASE + "\nARG B\nRUN --mount=type=bind,from=${{B:-{tag}}},target=/v cat /v/x\n",
    ],
)
def test_the_builder_has_no_view_of_the_engines_images(
    victim, attacker_repo, docker_client, dockerfile
):
    hexid = victim.image_id.removeprefix("sha256:")
    text = dockerfile.format(tag=victim.image_tag, short=hexid[:4])

    build = attacker_repo(text, docker_client)

    assert build.status == BuildStatus.FAILED, build.reason
    assert SECRET not in "\n".join(build.log_lines.values_list("text", flat=True))
    assert build.reason.startswith("the Dockerfile build failed: ")


def test_a_workspace_builds_on_its_own_images(victim, repo_service, docker_client):
    # The victim's own workspace may build on its earlier build, by its tag.
    service = repo_service(
        {"Dockerfile": f"FROM {victim.image_tag}\nRUN cat /secret && echo\n"}, name="second"
    )
    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert SECRET in build.log_lines.values_list("text", flat=True)


def test_build_steps_run_with_limits_and_few_capabilities(repo_service, docker_client, settings):
    settings.BUILD_MEMORY_MB = 300
    settings.BUILD_CPUS = 0.5
    settings.BUILD_PIDS = 77
    service = repo_service(
        {
            "Dockerfile": f"FROM {BASE}\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max && "
            "grep CapEff /proc/self/status && id -u\n"
        }
    )
    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    lines = list(build.log_lines.order_by("seq").values_list("text", flat=True))
    assert str(300 * 1024 * 1024) in lines
    assert "50000" in lines
    assert "77" in lines
    capabilities = int(next(x for x in lines if x.startswith("CapEff:")).split()[1], 16)
    # Docker's defaults less NET_RAW (13), MKNOD (27) and AUDIT_WRITE (29); never SYS_ADMIN (21).
    for bit in (13, 21, 27, 29):
        assert not capabilities & (1 << bit), bit
    assert capabilities & (1 << 0)  # CHOWN, which package installs need
    assert "==> Building in an isolated builder: 300 MB memory, 0.5 CPU, 77 processes, " in (
        " ".join(lines)
    )


def test_a_build_that_forks_past_its_process_limit_fails(repo_service, docker_client, settings):
    settings.BUILD_PIDS = 20
    forks = "i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); done; wait"
    service = repo_service({"Dockerfile": f"FROM {BASE}\nRUN {forks}\n"})
    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    lines = "\n".join(build.log_lines.values_list("text", flat=True))
    assert "can't fork" in lines or "Resource temporarily unavailable" in lines, lines


def test_a_dead_builds_store_is_removed_by_the_next_build(repo_service, docker_client, settings):
    service = repo_service({"Dockerfile": f"FROM {BASE}\n"})
    stale = settings.BUILD_STORAGE_DIR / service.workspace_id / "builds" / "bld-dead"
    (stale / "storage").mkdir(parents=True)

    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert not stale.exists()


def test_builds_seeding_a_new_workspace_store_at_once_all_get_the_base_image(busybox_image):
    """Four first builds of a workspace copy the base image into its new store at the same time
    (the CI flake of test_start_beside_builds: one of four builds failed in a second with
    "locating pulled image … image not known", as one pull's clean-up removed the name another
    was about to read). Real buildah, one store, four threads."""
    import threading
    import uuid

    from services.builds.builder import Store

    store = None
    errors: list[str] = []

    def seed():
        try:
            store.seed(busybox_image, "oneoff/busybox:latest")
        except Exception as exc:
            errors.append(repr(exc))

    for _ in range(3):  # the race needs the store to be new: a fresh one each round
        store = Store(f"wsp-seed-{uuid.uuid4().hex[:8]}")
        threads = [threading.Thread(target=seed) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.has(busybox_image)
    assert errors == []

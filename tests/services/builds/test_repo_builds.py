"""Repository builds against the real Docker Engine and git, from file:// repositories."""

import os
from pathlib import Path

import pytest
from django.conf import settings

from services.builds import queue as builds
from services.builds.git import local_root
from services.models import BuildStatus
from tests.helpers import BASE, Background, Repo, wait_for

pytestmark = pytest.mark.docker

DOCKERFILE = f'FROM {BASE}\nCOPY version.txt /version.txt\nCMD ["cat", "/version.txt"]\n'


def run(service, docker_client, **request):
    return builds.run_build(builds.request_build(service, **request).id, client=docker_client)


def output_of(docker_client, image_id: str) -> str:
    return docker_client.containers.run(
        image_id,
        network_mode="none",
        remove=True,
        labels={"oneoff.test": "builds"},
    ).decode()


def texts(build) -> list[str]:
    return list(build.log_lines.order_by("seq").values_list("text", flat=True))


def test_it_builds_the_branch_head_and_records_the_commit(repo_service, docker_client):
    service = repo_service({"Dockerfile": DOCKERFILE, "version.txt": "one\n"})
    head = service.repo.commit({"version.txt": "two\n"}, "Bump to two\n\nWith a body.")

    build = run(service, docker_client)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert build.commit_id == head
    assert build.commit_message == "Bump to two\n\nWith a body."
    assert build.image_tag == f"oneoff/{service.id}:{build.id}"
    image = docker_client.images.get(build.image_tag)
    assert build.image_id == image.id
    assert image.labels["oneoff.build"] == build.id
    assert output_of(docker_client, build.image_id) == "two\n"
    lines = texts(build)
    assert f"==> Checked out commit {head[:12]}: Bump to two" in lines
    assert any(line.startswith("STEP 2/") for line in lines)
    assert lines[-1] == f"==> Build succeeded: image {build.image_id} ({build.image_tag})"


def test_no_build_log_line_names_the_installation(repo_service, docker_client, settings):
    """The instance label value (which the supervisor lists containers by) is not for tenants."""
    settings.ONEOFF_INSTANCE = "inst-do-not-print-7f3a"
    service = repo_service({"Dockerfile": DOCKERFILE, "version.txt": "one\n"})

    build = run(service, docker_client)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    lines = texts(build)
    assert any(line.startswith("STEP ") for line in lines)
    assert not [line for line in lines if settings.ONEOFF_INSTANCE in line]
    assert "oneoff.instance" not in docker_client.images.get(build.image_id).labels


def test_it_builds_a_given_commit(repo_service, docker_client):
    service = repo_service()
    first = service.repo.commit({"Dockerfile": DOCKERFILE, "version.txt": "one\n"}, "One")
    service.repo.commit({"version.txt": "two\n"}, "Two")

    build = run(service, docker_client, commit_id=first)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert build.commit_id == first
    assert build.commit_message == "One"
    assert output_of(docker_client, build.image_id) == "one\n"


def test_it_uses_the_dockerfile_path_context_and_root_dir(repo_service, docker_client):
    service = repo_service(
        {
            "app/docker/Build.dockerfile": f"FROM {BASE}\nCOPY web/page.txt /page.txt\n"
            'CMD ["cat", "/page.txt"]\n',
            "app/web/page.txt": "from a sub folder\n",
        },
        root_dir="app",
        dockerfile_path="docker/Build.dockerfile",
        docker_context="./",
    )

    build = run(service, docker_client)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert output_of(docker_client, build.image_id) == "from a sub folder\n"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_it_stores_log_lines_while_the_build_runs(repo_service, docker_client):
    service = repo_service(
        {
            "Dockerfile": f"FROM {BASE}\n"
            "RUN echo first-line-of-output && sleep 2 && echo last-line-of-output\n",
        }
    )
    build = builds.request_build(service)
    runner = Background(builds.run_build, build.id, client=docker_client)
    runner.start()

    wait_for(lambda: build.log_lines.filter(text="first-line-of-output").exists())
    build.refresh_from_db()
    assert build.status == BuildStatus.BUILDING
    assert not build.log_lines.filter(text="last-line-of-output").exists()

    build = runner.finish()
    assert build.status == BuildStatus.SUCCEEDED, build.reason
    lines = texts(build)
    assert lines.index("first-line-of-output") < lines.index("last-line-of-output")
    seqs = list(build.log_lines.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_failing_dockerfile_fails_with_the_error_in_the_log(repo_service, docker_client):
    service = repo_service(
        {"Dockerfile": f"FROM {BASE}\nRUN echo about to fail && exit 3\nRUN echo never\n"}
    )

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert build.reason == (
        'the Dockerfile build failed: building at STEP "RUN echo about to fail && exit 3": '
        "while running runtime: exit status 3"
    )
    lines = texts(build)
    assert "about to fail" in lines
    assert f"Error: {build.reason.removeprefix('the Dockerfile build failed: ')}" in lines
    assert lines[-1] == f"==> Build failed: {build.reason}"
    assert build.image_id == ""
    assert service.latest_successful_build() is None
    # The build's own store (its containers, mounted layers) is gone even though a step failed.
    builds_dir = settings.BUILD_STORAGE_DIR / service.workspace_id / "builds"
    assert list(builds_dir.iterdir()) == []
    assert str(builds_dir) not in Path("/proc/self/mounts").read_text()


def test_a_dockerfile_with_a_syntax_error_fails(repo_service, docker_client):
    service = repo_service({"Dockerfile": f"FROM {BASE}\nNOTANINSTRUCTION foo\n"})

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert build.reason.startswith("the Dockerfile build failed: ")
    assert "notaninstruction" in build.reason.lower()


def test_a_missing_dockerfile_fails(repo_service, docker_client):
    service = repo_service({"README.md": "no Dockerfile here\n"})

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert build.reason == (
        f"no Dockerfile at './Dockerfile' in the repository (commit {build.commit_id[:12]}); "
        "set dockerfilePath to where it is"
    )
    assert texts(build)[-1] == f"==> Build failed: {build.reason}"


def test_a_missing_context_folder_fails(repo_service, docker_client):
    service = repo_service({"Dockerfile": DOCKERFILE}, docker_context="nope")

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert build.reason.startswith("dockerContext 'nope' is not a folder in the repository")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("docker_context", ".."),
        ("docker_context", "sub/../../.."),
        ("dockerfile_path", "../Dockerfile"),
        ("root_dir", "../.."),
        ("docker_context", "/etc"),
    ],
)
def test_a_path_outside_the_repository_fails(repo_service, docker_client, field, value):
    service = repo_service({"Dockerfile": DOCKERFILE, "sub/x": ""}, **{field: value})

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    name = {"docker_context": "dockerContext", "dockerfile_path": "dockerfilePath"}.get(
        field, "rootDir"
    )
    assert build.reason.startswith(f"{name} {value!r} ")
    assert "outside the repository" in build.reason or "relative to the repository" in build.reason


def test_a_symlink_out_of_the_repository_fails(repo_service, docker_client, tmp_path):
    service = repo_service({"Dockerfile": DOCKERFILE}, docker_context="escape")
    os.symlink(str(tmp_path), service.repo.path / "escape")
    service.repo.commit({}, "Add a symlink that leaves the repository")

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert build.reason == "dockerContext 'escape' points outside the repository"


@pytest.mark.parametrize(
    "url",
    ["file:///nonexistent/oneoff-repo", "not a url at all", "ext::sh -c touch% /tmp/pwned"],
)
def test_a_repository_that_cannot_be_cloned_fails(service, docker_client, url):
    service.repo_url = url
    service.save()

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert build.reason.startswith(f"could not clone {url}: ")
    assert texts(build)[-1] == f"==> Build failed: {build.reason}"
    assert not os.path.exists("/tmp/pwned")


def test_a_missing_branch_fails(repo_service, docker_client):
    service = repo_service({"Dockerfile": DOCKERFILE}, branch="no-such-branch")

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert "no-such-branch" in build.reason
    assert build.reason.startswith("could not clone ")


def test_a_missing_commit_fails(repo_service, docker_client):
    service = repo_service({"Dockerfile": DOCKERFILE})

    build = run(service, docker_client, commit_id="0123456789abcdef0123456789abcdef01234567")

    assert build.status == BuildStatus.FAILED
    assert build.reason.startswith(
        "commit 0123456789abcdef0123456789abcdef01234567 was not found in "
    )


def test_credentials_in_the_url_never_reach_the_log(service, docker_client):
    service.repo_url = "https://user:s3cret-token@127.0.0.1:9/acme/app.git"
    service.save()

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert "s3cret-token" not in build.reason
    assert not build.log_lines.filter(text__contains="s3cret-token").exists()
    assert "https://***@127.0.0.1:9/acme/app.git" in build.reason


@pytest.mark.parametrize(
    "form", ["file_url", "plain_path", "symlink_inside", "dot_dot", "dot_dot_path", "shared_root"]
)
def test_a_workspace_clones_local_repositories_only_from_its_own_folder(
    repo_service, make_repo, docker_client, workspace, other_workspace, settings, form
):
    """Two workspaces on one server: the second's admin must not build from the first's local
    repository, nor from any folder outside its own: file:// URLs and plain paths are cloned
    only from BUILD_LOCAL_REPOS_DIR/<workspace id>/ (symlinks resolved, ``..`` refused)."""
    theirs = make_repo(workspace)
    theirs.commit({"Dockerfile": DOCKERFILE, "version.txt": "secret\n"})
    service = repo_service({"Dockerfile": DOCKERFILE, "version.txt": "mine\n"}, ws=other_workspace)
    mine = local_root(other_workspace.id)
    outside = theirs.path.resolve()
    if form == "file_url":
        service.repo_url = outside.as_uri()
    elif form == "plain_path":
        service.repo_url = str(outside)
    elif form == "symlink_inside":
        link = mine / "looks-inside"
        link.symlink_to(outside)
        service.repo_url = link.as_uri()
    elif form == "dot_dot":
        service.repo_url = (mine / ".." / workspace.id / theirs.path.name).as_uri()
    elif form == "dot_dot_path":
        service.repo_url = str(mine / ".." / workspace.id / theirs.path.name)
    else:  # a repository in the folder itself, outside every workspace's
        shared = Repo(settings.BUILD_LOCAL_REPOS_DIR / "shared")
        shared.commit({"Dockerfile": DOCKERFILE, "version.txt": "shared\n"})
        service.repo_url = shared.url
    service.save()

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert build.reason.startswith("could not clone ")
    assert "transport 'file' not allowed" in " ".join(texts(build))
    assert not build.image_id


def test_a_local_repository_builds_for_its_own_workspace(
    repo_service, make_service, docker_client, workspace, other_workspace
):
    """The same file:// URL that the other workspace is refused (above) builds for the
    workspace whose folder holds it."""
    service = repo_service({"Dockerfile": DOCKERFILE, "version.txt": "ours\n"})
    theirs = make_service(other_workspace, name="theirs", repo_url=service.repo_url, branch="main")

    assert run(service, docker_client).status == BuildStatus.SUCCEEDED
    assert run(theirs, docker_client).status == BuildStatus.FAILED


def test_oneoff_s_own_checkout_cannot_be_cloned_even_when_debug_is_on(
    service, docker_client, settings
):
    settings.DEBUG = True
    service.repo_url = settings.BASE_DIR.as_uri()
    service.branch = "main"
    service.save()

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert "transport 'file' not allowed" in " ".join(texts(build))


def test_a_git_error_is_scrubbed_of_the_services_env_values(repo_service, docker_client):
    # Viewers read a build's reason but not env values: git echoes the branch it could not find.
    service = repo_service(
        {"Dockerfile": DOCKERFILE, "version.txt": "1\n"}, branch="tok-no-such-branch"
    )
    service.env_vars.create(key="DEPLOY_TOKEN", value="tok-no-such-branch")

    build = run(service, docker_client)

    assert build.status == BuildStatus.FAILED
    assert "tok-no-such-branch" not in build.reason
    assert "****" in build.reason

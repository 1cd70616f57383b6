"""Credentials in repository URLs (issue 13, point 3): stored apart and encrypted, shown to no
one, handed to git only through its environment."""

import subprocess

import pytest
from django.db import connection

from services.builds import git as git_module
from services.builds import queue as builds
from services.models import Build, BuildStatus, Service
from tests.helpers import BASE

TOKEN = "s3cret-token"
URL = f"https://user:{TOKEN}@127.0.0.1:9/acme/app.git"
SHOWN = "https://***@127.0.0.1:9/acme/app.git"


def raw_row(table: str, pk: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])
        return repr(cursor.fetchone())


@pytest.mark.django_db
def test_the_url_is_stored_without_its_user_info_and_the_credential_encrypted(make_service):
    service = make_service(repo_url=URL, branch="main")
    build = builds.request_build(service)

    for row in (Service.objects.get(pk=service.pk), Build.objects.get(pk=build.pk)):
        assert row.repo_url == "https://127.0.0.1:9/acme/app.git"
        assert row.repo_credential == f"user:{TOKEN}"
        assert row.repo_shown == SHOWN
    assert TOKEN not in raw_row("services_service", service.pk)
    assert TOKEN not in raw_row("services_build", build.pk)


@pytest.mark.django_db
def test_the_migration_moves_credentials_out_of_stored_urls(service):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("services.migrations.0007_repo_credential")
    Service.objects.filter(pk=service.pk).update(repo_url=URL)  # as stored before the migration
    build = Build.objects.create(service=service)
    Build.objects.filter(pk=build.pk).update(repo_url=URL)

    migration.move_credentials_out_of_urls(apps, None)

    assert TOKEN not in raw_row("services_service", service.pk)
    assert TOKEN not in raw_row("services_build", build.pk)
    assert Service.objects.get(pk=service.pk).repo_shown == SHOWN
    assert Build.objects.get(pk=build.pk).repo_credential == f"user:{TOKEN}"

    migration.put_credentials_back_into_urls(apps, None)
    assert Service.objects.get(pk=service.pk).repo_url == URL


@pytest.mark.django_db
def test_git_gets_the_credential_in_its_environment_never_in_its_arguments(
    make_service, monkeypatch
):
    service = make_service(repo_url="https://us%40er:t0k:en@git.example:8443/a/b.git")
    build = builds.request_build(service)
    calls = []

    class Refused(Exception):
        pass

    def popen(args, **kwargs):
        calls.append((args, kwargs["env"]))
        raise Refused

    monkeypatch.setattr(git_module.subprocess, "Popen", popen)
    # git.example resolves here to a documentation address that answers (egress is tested in
    # test_egress.py, against real servers).
    monkeypatch.setattr(git_module, "allowed_addresses", lambda host, port: ["192.0.2.7"])
    monkeypatch.setattr(git_module, "first_answer", lambda remote, addresses, timeout: "192.0.2.7")
    steps = git_module.GitSteps()
    steps.build = build
    steps.log = type("Log", (), {"line": lambda self, text, system=False: None})()
    with pytest.raises(Refused):
        steps.clone("/nonexistent/checkout")

    monkeypatch.undo()  # the real git from here on
    ((args, env),) = calls
    assert "t0k" not in " ".join(args)
    assert "https://git.example:8443/a/b.git" in args
    assert "http.curloptResolve=git.example:8443:192.0.2.7" in args  # held to the checked one
    # git's own credential machinery answers only for the repository's host, from the env.
    fill = subprocess.run(
        ["git", "credential", "fill"],
        input="protocol=https\nhost=git.example:8443\n\n",
        capture_output=True,
        text=True,
        env={**env, "GIT_TERMINAL_PROMPT": "0"},
        check=True,
    )
    assert "username=us@er\npassword=t0k:en\n" in fill.stdout
    other = subprocess.run(
        ["git", "credential", "fill"],
        input="protocol=https\nhost=elsewhere.example\n\n",
        capture_output=True,
        text=True,
        env={**env, "GIT_TERMINAL_PROMPT": "0"},
    )
    assert "t0k" not in other.stdout


@pytest.mark.docker
def test_a_failed_clone_shows_the_masked_url(service, docker_client):
    service.repo_url = URL
    service.save()

    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    assert build.status == BuildStatus.FAILED
    assert SHOWN in build.reason
    assert build.log_lines.filter(text__startswith=f"==> Cloning {SHOWN} ").exists()
    assert not build.log_lines.filter(text__contains=TOKEN).exists()


@pytest.mark.docker
def test_a_file_repository_still_clones(repo_service, docker_client):
    service = repo_service({"Dockerfile": f"FROM {BASE}\nCOPY a /a\n", "a": "a\n"})

    build = builds.run_build(builds.request_build(service).id, client=docker_client)

    assert build.status == BuildStatus.SUCCEEDED, build.reason
    assert build.repo_credential == ""

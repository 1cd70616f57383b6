"""The test registries of tests/plugins/registry.py are real: what is pushed comes back by
digest through the engine, and the auth one lets no one in without its credentials."""

import docker.errors
import pytest

from tests.plugins import registry as registry_plugin


def _pull(docker_client, reference: str, auth_config=None):
    return docker_client.images.pull(reference, auth_config=auth_config)


def test_a_pushed_image_is_pulled_back_by_digest(registry, docker_client, busybox_image):
    digest = registry.push(busybox_image, "busybox:open")
    reference = registry.reference(f"busybox@{digest}")
    assert not _tags_at(docker_client, registry.host), "push leaves no local tag behind"

    pulled = _pull(docker_client, reference)

    assert digest.startswith("sha256:")
    assert pulled.id == busybox_image
    assert reference in pulled.attrs["RepoDigests"]
    docker_client.images.remove(reference, noprune=True)


def test_the_auth_registry_refuses_a_pull_without_credentials(
    auth_registry, docker_client, busybox_image
):
    digest = auth_registry.push(busybox_image, "private/busybox:v1")
    reference = auth_registry.reference(f"private/busybox@{digest}")

    with pytest.raises(docker.errors.APIError) as refused:
        _pull(docker_client, reference)
    with pytest.raises(docker.errors.APIError):
        _pull(docker_client, reference, {"username": auth_registry.username, "password": "no"})

    assert "no basic auth credentials" in str(refused.value) or "unauthorized" in str(refused.value)
    pulled = _pull(docker_client, reference, auth_registry.auth_config)
    assert pulled.id == busybox_image
    docker_client.images.remove(reference, noprune=True)


def test_the_auth_registry_refuses_a_push_without_credentials(auth_registry, busybox_image):
    anonymous = type(auth_registry)(
        host=auth_registry.host,
        folder=auth_registry.folder,
        process=auth_registry.process,
        docker=auth_registry.docker,
    )

    with pytest.raises(pytest.fail.Exception, match="push of"):
        anonymous.push(busybox_image, "private/busybox:anonymous")


def _tags_at(docker_client, host: str) -> list[str]:
    return [
        tag
        for image in docker_client.images.list()
        for tag in image.tags
        if tag.startswith(f"{host}/")
    ]


def test_a_missing_docker_registry_fails_rather_than_skips(monkeypatch, tmp_path):
    monkeypatch.setattr(registry_plugin.shutil, "which", lambda name: None)
    monkeypatch.setattr(registry_plugin.os.path, "exists", lambda path: False)

    with pytest.raises(pytest.fail.Exception, match="apt-get install docker-registry"):
        registry_plugin.start_registry(tmp_path, None, auth=False)

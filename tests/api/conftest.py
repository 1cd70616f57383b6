"""API clients by persona: each signs its requests with its own key."""

import pytest
from django.core.cache import cache

from services.models import ApiKey, EnvVar
from tests.helpers import ApiClient


@pytest.fixture(autouse=True)
def _fast_and_fresh(settings, db):
    # Personas get passwords; a fast hasher keeps this suite quick (nothing here tests hashing).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    return


@pytest.fixture
def make_client(db):
    def make(user, workspace, *, read_only=False) -> ApiClient:
        key, secret = ApiKey.issue(user, workspace, read_only=read_only)
        return ApiClient(secret, key)

    return make


@pytest.fixture
def owner_api(make_client, owner, workspace):
    return make_client(owner, workspace)


@pytest.fixture
def developer_api(make_client, developer, workspace):
    return make_client(developer, workspace)


@pytest.fixture
def viewer_api(make_client, viewer, workspace):
    return make_client(viewer, workspace)


@pytest.fixture
def readonly_api(make_client, owner, workspace):
    return make_client(owner, workspace, read_only=True)


@pytest.fixture
def outsider_api(make_client, outsider, other_workspace):
    return make_client(outsider, other_workspace)


@pytest.fixture
def built_service(service, make_build):
    """A web service with a successful build and two env vars."""
    make_build(service)
    EnvVar.objects.create(service=service, key="DATABASE_URL", value="postgres://secret")
    EnvVar.objects.create(service=service, key="DEBUG", value="0")
    return service

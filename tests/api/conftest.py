"""API clients by persona: each signs its requests with its own key."""

import json

import pytest
from django.core.cache import cache
from django.test import Client

from services.models import ApiKey, EnvVar


class ApiClient:
    def __init__(self, secret: str, key: ApiKey):
        self.secret = secret
        self.key = key
        self.client = Client()

    def request(self, method: str, url: str, body=None, *, raw: str | None = None, headers=None):
        headers = {"Authorization": f"Bearer {self.secret}", **(headers or {})}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        call = getattr(self.client, method.lower())
        if method.upper() in ("GET", "HEAD") or data is None:
            if method.upper() in ("GET", "HEAD"):
                return call(url, body or {}, headers=headers)
            return call(url, "", content_type="application/json", headers=headers)
        return call(url, data, content_type="application/json", headers=headers)

    def get(self, url, params=None, **kw):
        return self.request("GET", url, params, **kw)

    def post(self, url, body=None, **kw):
        return self.request("POST", url, body, **kw)

    def put(self, url, body=None, **kw):
        return self.request("PUT", url, body, **kw)

    def patch(self, url, body=None, **kw):
        return self.request("PATCH", url, body, **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, **kw)


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


def assert_error(response, status: int, *, field: str | None = None, id: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"id", "message"}, body
    if field is not None:
        assert body["message"].startswith(f"{field}:"), body
    if id is not None:
        assert body["id"] == id, body
    return body

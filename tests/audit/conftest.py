"""Personas' clients with known client addresses, for the audit trail's tests."""

import pytest
from django.core.cache import cache
from django.test import Client

from services.models import ApiKey
from tests.helpers import ApiClient

API_ADDRESS = "203.0.113.7"
PAGE_ADDRESS = "198.51.100.9"


@pytest.fixture(autouse=True)
def _fast_and_fresh(settings, db):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()


@pytest.fixture
def api_as():
    """An API client of ``user`` in ``workspace`` whose requests come from API_ADDRESS."""

    def make(user, workspace, *, read_only=False) -> ApiClient:
        key, secret = ApiKey.issue(user, workspace, read_only=read_only)
        api = ApiClient(secret, key)
        api.client.defaults["REMOTE_ADDR"] = API_ADDRESS
        return api

    return make


@pytest.fixture
def page_as():
    """A signed-in dashboard client of ``user`` whose requests come from PAGE_ADDRESS."""

    def make(user) -> Client:
        client = Client(REMOTE_ADDR=PAGE_ADDRESS)
        client.force_login(user)
        return client

    return make

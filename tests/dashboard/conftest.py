"""Fixtures for the dashboard's view tests: signed-in clients (the makers of jobs with log
lines are in tests/plugins/jobs.py)."""

import pytest
from django.test import Client


@pytest.fixture
def login():
    def sign_in(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return sign_in


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The personas are made with passwords; a slow hasher would dominate these tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

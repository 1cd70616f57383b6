"""Sign-in throttling (django-axes): per account and per client address, for the dashboard and the
admin, with a clear message, unlocked by the documented commands."""

import pytest
from django.core.management import call_command
from django.test import Client


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = 3


def sign_in(path: str, email: str, password: str, address: str = "203.0.113.7"):
    return Client(REMOTE_ADDR=address).post(path, {"username": email, "password": password})


def test_an_account_locks_after_the_limit_even_for_the_right_password(owner):
    for _ in range(2):
        assert sign_in("/login/", "alice@acme.test", "wrong").status_code == 200
    assert sign_in("/login/", "alice@acme.test", "wrong").status_code == 429  # the limit
    locked = sign_in("/login/", "alice@acme.test", "pw")
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    # From another address too: the account itself is locked.
    assert sign_in("/login/", "alice@acme.test", "pw", address="198.51.100.9").status_code == 429

    call_command("axes_reset_username", "alice@acme.test", stdout=None)
    assert sign_in("/login/", "alice@acme.test", "pw").status_code == 302


def test_a_client_address_locks_after_the_limit_across_accounts(owner, developer):
    for email in ("nobody@acme.test", "someone@acme.test", "dave@acme.test"):
        sign_in("/login/", email, "wrong", address="192.0.2.50")
    assert sign_in("/login/", "alice@acme.test", "pw", address="192.0.2.50").status_code == 429
    # Another address is not affected.
    assert sign_in("/login/", "alice@acme.test", "pw", address="192.0.2.51").status_code == 302

    call_command("axes_reset_ip", "192.0.2.50", stdout=None)
    assert sign_in("/login/", "alice@acme.test", "pw", address="192.0.2.50").status_code == 302


def test_the_admin_sign_in_is_throttled_too(owner):
    owner.is_staff = True
    owner.save()
    for _ in range(3):
        sign_in("/admin/login/", "alice@acme.test", "wrong")
    assert sign_in("/admin/login/", "alice@acme.test", "pw").status_code == 429


def test_a_success_before_the_limit_clears_the_count(owner):
    for _ in range(2):
        sign_in("/login/", "alice@acme.test", "wrong")
    assert sign_in("/login/", "alice@acme.test", "pw").status_code == 302
    for _ in range(2):
        sign_in("/login/", "alice@acme.test", "wrong")
    assert sign_in("/login/", "alice@acme.test", "pw").status_code == 302


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(owner, settings):
    """A client cannot dodge the per-address lock by sending its own X-Forwarded-For."""
    for n in range(3):
        Client(REMOTE_ADDR="192.0.2.60", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").post(
            "/login/", {"username": f"x{n}@acme.test", "password": "wrong"}
        )
    assert sign_in("/login/", "alice@acme.test", "pw", address="192.0.2.60").status_code == 429

    settings.PROXY_COUNT = 1
    client = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.61")
    for n in range(3):
        client.post("/login/", {"username": f"y{n}@acme.test", "password": "wrong"})
    behind_proxy = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.61")
    locked = behind_proxy.post("/login/", {"username": "alice@acme.test", "password": "pw"})
    assert locked.status_code == 429
    other = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.62")
    assert (
        other.post("/login/", {"username": "alice@acme.test", "password": "pw"}).status_code == 302
    )

"""config.sessions: the session and the user of a signed-in request, read with compiled queries
(issue 20), with every check Django makes around them kept."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone

from config import sessions


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def session_of(client) -> Session:
    return Session.objects.get(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)


def signed_in_page(client, service) -> bool:
    r = client.get(f"/services/{service.id}/jobs/")
    assert r.status_code in (200, 302)
    return r.status_code == 200


def test_a_signed_in_request_reads_both_rows_with_compiled_queries(signed_in, service):
    sessions._SESSION._compiled.clear()
    sessions._USER._compiled.clear()
    assert signed_in_page(signed_in, service)
    if connection.vendor == "postgresql":
        assert sessions._SESSION._compiled
        assert sessions._USER._compiled
    assert session_of(signed_in).get_decoded()[BACKEND_SESSION_KEY] == sessions.OUR_BACKEND


def test_an_expired_session_is_no_session(signed_in, service):
    Session.objects.filter(pk=session_of(signed_in).pk).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    assert not signed_in_page(signed_in, service)


def test_an_unknown_or_malformed_session_key_is_no_session(client, owner, service):
    for key in ["x" * 32, "", "<script>", "' OR 1=1 --", "\x00"]:
        client.cookies[settings.SESSION_COOKIE_NAME] = key
        assert not signed_in_page(client, service), key


def test_a_deleted_or_inactive_user_is_signed_out(signed_in, owner, service):
    owner.is_active = False
    owner.save()
    assert not signed_in_page(signed_in, service)
    owner.is_active = True
    owner.save()
    signed_in.force_login(owner)
    assert signed_in_page(signed_in, service)
    owner.delete()
    assert not signed_in_page(signed_in, service)


def test_a_password_change_signs_out_other_sessions(signed_in, owner, service):
    owner.set_password("another one")
    owner.save()
    assert not signed_in_page(signed_in, service)


def test_a_session_of_another_user_id_is_that_users_only_if_its_hash_matches(
    signed_in, owner, developer, service
):
    """Editing the user id in a session (were its data writable) does not sign in as another:
    Django's session hash check still runs on what the compiled read returns."""
    row = session_of(signed_in)
    data = row.get_decoded()
    data[SESSION_KEY] = str(developer.pk)
    store = sessions.SessionStore(session_key=row.session_key)
    store.update(data)
    store.save()
    assert data[HASH_SESSION_KEY] != developer.get_session_auth_hash()
    assert not signed_in_page(signed_in, service)


def test_a_session_signed_in_by_djangos_backend_stays_signed_in(signed_in, owner, service):
    row = session_of(signed_in)
    store = sessions.SessionStore(session_key=row.session_key)
    store.load()
    store[BACKEND_SESSION_KEY] = sessions.DJANGOS_BACKEND
    store.save()
    assert session_of(signed_in).get_decoded()[BACKEND_SESSION_KEY] == sessions.DJANGOS_BACKEND
    assert signed_in_page(signed_in, service)


def test_a_user_id_that_is_no_id_is_no_user(owner):
    backend = sessions.ModelBackend()
    assert backend.get_user("not a number") is None
    assert backend.get_user(owner.pk).pk == owner.pk
    assert backend.get_user(str(owner.pk)).pk == owner.pk
    assert backend.get_user(2**40) is None

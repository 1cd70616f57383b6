import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from jobs.models import EnvSnapshot
from services.crypto import _fernet
from services.models import EnvVar

SECRET = "postgres://admin:hunter2-very-secret@db/prod"


def raw(table, column, pk):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_env_values_are_not_stored_in_plaintext(service):
    var = EnvVar.objects.create(service=service, key="DATABASE_URL", value=SECRET)
    stored = raw("services_envvar", "value", var.pk)
    assert "hunter2" not in stored
    assert stored.startswith("gAAAA")  # a Fernet token
    assert EnvVar.objects.get(pk=var.pk).value == SECRET


@pytest.mark.django_db
def test_env_snapshots_are_not_stored_in_plaintext(service):
    EnvVar.objects.create(service=service, key="DATABASE_URL", value=SECRET)
    snapshot = EnvSnapshot.capture(service)
    assert "hunter2" not in raw("jobs_envsnapshot", "data", snapshot.pk)
    assert EnvSnapshot.objects.get(pk=snapshot.pk).values == {"DATABASE_URL": SECRET}


@pytest.mark.django_db
def test_keys_rotate(service, settings):
    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old_key]
    var = EnvVar.objects.create(service=service, key="TOKEN", value=SECRET)
    snapshot = EnvSnapshot.capture(service)
    before = raw("services_envvar", "value", var.pk)

    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    assert EnvVar.objects.get(pk=var.pk).value == SECRET  # old tokens still read
    call_command("rotate_field_keys", stdout=io.StringIO())
    after = raw("services_envvar", "value", var.pk)
    assert after != before

    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key is gone
    assert EnvVar.objects.get(pk=var.pk).value == SECRET
    assert EnvSnapshot.objects.get(pk=snapshot.pk).values == {"TOKEN": SECRET}
    _fernet.cache_clear()

import io

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from jobs.models import EnvSnapshot
from logstreams.models import ServiceLogStream, WorkspaceLogStream
from services.crypto import EncryptedTextField, _fernet
from services.management.commands import rotate_field_keys
from services.models import Build, EnvVar, RegistryCredential, Service
from webhooks.models import Webhook

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
    service.save()  # its (empty) repo_credential under the old key, like every other row
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


@pytest.mark.django_db
def test_rotation_re_encrypts_every_encrypted_field(service, settings, monkeypatch):
    monkeypatch.setattr(rotate_field_keys, "BATCH", 1)  # several batches for a field
    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old_key]
    service.save()  # its (empty) repo_credential under the old key, like every other row
    EnvVar.objects.create(service=service, key="DEBUG", value="0")
    stored = {  # (model label, field name): (a row, its plaintext)
        ("services.EnvVar", "value"): (
            EnvVar.objects.create(service=service, key="TOKEN", value=SECRET),
            SECRET,
        ),
        ("jobs.EnvSnapshot", "data"): (
            EnvSnapshot.capture(service),
            f'{{"DEBUG":"0","TOKEN":"{SECRET}"}}',
        ),
        ("services.Service", "repo_credential"): (
            Service.objects.create(
                workspace=service.workspace,
                name="private-repo",
                type=service.type,
                plan=service.plan,
                repo_url="https://user:repo-token@git.example/a.git",
            ),
            "user:repo-token",
        ),
        ("services.Build", "repo_credential"): (
            Build.objects.create(
                service=service, repo_url="https://user:bld-token@git.example/a.git"
            ),
            "user:bld-token",
        ),
        ("services.RegistryCredential", "auth_token"): (
            RegistryCredential.objects.create(
                workspace=service.workspace,
                name="hub",
                registry="DOCKER",
                username="bot",
                auth_token="registry-token",
            ),
            "registry-token",
        ),
        ("logstreams.WorkspaceLogStream", "token"): (
            WorkspaceLogStream.objects.create(
                workspace=service.workspace, endpoint="logs.test:6514", token="ws-token"
            ),
            "ws-token",
        ),
        ("logstreams.ServiceLogStream", "token"): (
            ServiceLogStream.objects.create(
                service=service, endpoint="svc.test:6514", token="svc-token"
            ),
            "svc-token",
        ),
        ("webhooks.Webhook", "secret"): (
            Webhook.objects.create(
                workspace=service.workspace,
                name="hook",
                url="https://hooks.test/in",
                secret="whsec_rotated-webhook-secret",
            ),
            "whsec_rotated-webhook-secret",
        ),
    }
    encrypted = {
        (model._meta.label, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, EncryptedTextField)
    }
    assert set(stored) == encrypted, "every encrypted field needs a row in this test"

    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_field_keys", stdout=io.StringIO())

    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key is gone
    try:
        for (label, name), (row, plaintext) in stored.items():
            assert getattr(type(row).objects.get(pk=row.pk), name) == plaintext, (label, name)
        assert EnvVar.objects.get(key="DEBUG").value == "0"
    finally:
        _fernet.cache_clear()

"""Entries cannot be changed or deleted through the ORM or the admin; the retention purge
deletes only the old ones."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit import retention
from audit.models import AppendOnly, AuditEntry
from audit.trail import Actor, record


@pytest.fixture
def entry(workspace, owner):
    return record(Actor(user=owner), workspace, "service.suspend", target_id="srv-x")


def test_an_entry_cannot_be_saved_again(entry):
    entry.action = "job.create"
    with pytest.raises(AppendOnly):
        entry.save()
    fresh = AuditEntry.objects.get(pk=entry.pk)
    with pytest.raises(AppendOnly):
        fresh.save(update_fields=["action"])
    assert AuditEntry.objects.get(pk=entry.pk).action == "service.suspend"


def test_an_entry_cannot_be_deleted(entry):
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_entries_cannot_be_updated_in_bulk(entry):
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(action="job.create")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.update(target_id="srv-y")
    entry.target_id = "srv-y"
    # bulk_update joins the caller's transaction (no savepoint): give it one of its own.
    with pytest.raises(AppendOnly), transaction.atomic():
        AuditEntry.objects.bulk_update([entry], ["target_id"])
    with pytest.raises(AppendOnly):
        AuditEntry.objects.update_or_create(pk=entry.pk, defaults={"action": "job.create"})
    assert AuditEntry.objects.get(pk=entry.pk).target_id == "srv-x"


def test_the_admin_is_read_only(entry, client, django_user_model):
    boss = django_user_model.objects.create_superuser("root", "root@x.test", "pw")
    client.force_login(boss)
    base = "/admin/audit/auditentry/"
    assert client.get(base).status_code == 200
    assert client.get(base + "add/").status_code == 403
    assert client.post(f"{base}{entry.pk}/change/", {"action": "job.create"}).status_code == 403
    assert client.post(f"{base}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    client.post(base, bulk)
    assert AuditEntry.objects.filter(pk=entry.pk, action="service.suspend").exists()


def test_an_unknown_action_is_refused(workspace, owner):
    with pytest.raises(ValueError, match="unknown audit action"):
        record(Actor(user=owner), workspace, "anything.goes")


def test_retention_purges_only_old_entries(workspace, owner, settings):
    settings.AUDIT_RETENTION_DAYS = 30
    now = timezone.now()
    actor = Actor(user=owner)
    old = [
        AuditEntry.objects.create(
            workspace=workspace, action="job.create", created_at=now - timedelta(days=31 + i)
        )
        for i in range(7)
    ]
    kept = [
        record(actor, workspace, "job.create"),
        AuditEntry.objects.create(
            workspace=workspace, action="job.create", created_at=now - timedelta(days=29)
        ),
    ]
    assert retention.purge(now=now, batch_size=3) == 7  # three batches
    assert set(AuditEntry.objects.values_list("pk", flat=True)) == {e.pk for e in kept}
    assert not AuditEntry.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert retention.purge(now=now) == 0


def test_beat_runs_the_purge(workspace):
    from audit.tasks import purge_audit_entries
    from config.celery import app

    schedule = app.conf.beat_schedule["purge-audit-entries"]
    assert schedule["task"] == purge_audit_entries.name == "audit.tasks.purge_audit_entries"
    AuditEntry.objects.create(
        workspace=workspace, action="job.create", created_at=timezone.now() - timedelta(days=400)
    )
    assert purge_audit_entries() == 1

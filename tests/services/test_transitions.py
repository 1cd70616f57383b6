"""``transition``: an UPDATE that tells ``state_changed`` about exactly the rows it changed."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from services.models import Service
from services.transitions import state_changed, transition


def test_a_transition_tells_each_changed_row_once_in_one_statement(make_service):
    first, second, third = (make_service(name=name) for name in ("a", "b", "c"))
    Service.objects.filter(pk=third.pk).update(suspended=True)
    told: list[tuple[type, str, dict]] = []

    def receiver(sender, pk, fields, **kwargs):
        told.append((sender, pk, fields))

    state_changed.connect(receiver)
    try:
        with CaptureQueriesContext(connection) as captured:
            changed = transition(
                Service.objects.filter(pk__in=[first.pk, second.pk, third.pk], suspended=False),
                suspended=True,
            )
        # One UPDATE … RETURNING, no SELECT … FOR UPDATE before it (the rest is the receivers').
        statements = [q["sql"] for q in captured]
        updates = [sql for sql in statements if sql.startswith('UPDATE "services_service"')]
        assert len(updates) == 1
        assert "RETURNING" in updates[0]
        assert not [sql for sql in statements if sql.endswith("FOR UPDATE")]
        assert changed == 2
        assert sorted(pk for _, pk, _ in told) == sorted([first.pk, second.pk])
        assert all(
            sender is Service and fields == {"suspended": True} for sender, _, fields in told
        )
        told.clear()
        # The compare-and-set: a second run changes (and tells) nothing.
        assert transition(Service.objects.filter(pk=first.pk, suspended=False), suspended=True) == 0
        assert told == []
    finally:
        state_changed.disconnect(receiver)
    assert Service.objects.filter(suspended=True).count() == 3

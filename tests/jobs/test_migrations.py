"""jobs 0003 moves JobLogLine to a (job, seq) primary key by hand: it must keep every line."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("jobs", "0002_joblogline_without_db_foreign_key")]
AFTER = [("jobs", "0003_joblogline_job_seq_primary_key")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    """Every app's newest migration: where the other tests expect the schema to be."""
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_key_change_keeps_every_line_both_ways(job_service):
    from jobs.launch import create_job

    job = create_job(job_service, "true")
    try:
        old = migrate(BEFORE).get_model("jobs", "JobLogLine")
        old.objects.bulk_create(
            old(job_id=job.id, seq=i, timestamp=job.created_at, stream=1 + i % 2, text=f"l{i}")
            for i in range(50)
        )
        new = migrate(AFTER).get_model("jobs", "JobLogLine")
        rows = list(new.objects.order_by("seq").values_list("job_id", "seq", "stream", "text"))
        assert rows == [(job.id, i, 1 + i % 2, f"l{i}") for i in range(50)]
        assert new.objects.get(pk=(job.id, 7)).text == "l7"
        with connection.cursor() as cursor:
            columns = [
                c.name
                for c in connection.introspection.get_table_description(cursor, "jobs_joblogline")
            ]
            constraints = connection.introspection.get_constraints(cursor, "jobs_joblogline")
        assert "id" not in columns
        (primary,) = [c for c in constraints.values() if c["primary_key"]]
        assert sorted(primary["columns"]) == ["job_id", "seq"]
        old = migrate(BEFORE).get_model("jobs", "JobLogLine")
        assert sorted(old.objects.values_list("seq", flat=True)) == list(range(50))
        assert len(set(old.objects.values_list("id", flat=True))) == 50
    finally:
        migrate(latest())  # not only AFTER: later migrations (jobs 0005…) were unapplied too


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_log_marks_migration_marks_the_lines_already_stored(job_service):
    """jobs 0012 puts marks in place of the (job, timestamp) index: every thousandth line of
    the logs stored before it is marked, so their windows stay narrow."""
    from datetime import timedelta

    from jobs.launch import create_job

    job = create_job(job_service, "true")
    at = [job.created_at + timedelta(microseconds=7 * i) for i in range(2_500)]
    try:
        old = migrate([("jobs", "0011_log_chunks")]).get_model("jobs", "JobLogLine")
        old.objects.bulk_create(
            old(job_id=job.id, seq=i, timestamp=at[i], stream=1, text=f"l{i}") for i in range(2_500)
        )
        new = migrate([("jobs", "0012_log_marks")])
        marks = new.get_model("jobs", "JobLogMark").objects.order_by("seq")
        assert list(marks.values_list("job_id", "seq", "timestamp")) == [
            (job.id, seq, at[seq]) for seq in (0, 1000, 2000)
        ]
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, "jobs_joblogline")
        assert "job_log_time" not in constraints
    finally:
        migrate(latest())

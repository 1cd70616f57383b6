"""A trigram index on jobs' commands (PostgreSQL's pg_trgm), for the Jobs list's search by
command: Django's ``icontains`` there is ``UPPER(start_command) LIKE UPPER(%s)``, so the index
is on that expression. Nothing on SQLite."""

from django.db import migrations

INDEX = "job_command_trgm"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("jobs", "Job")._meta.db_table
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON {table} "
        "USING gin ((UPPER(start_command)) gin_trgm_ops)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("jobs", "0009_job_usage")]

    operations = [migrations.RunPython(create, drop, elidable=False)]

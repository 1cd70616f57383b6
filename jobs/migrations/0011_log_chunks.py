"""Search chunks of big logs (``jobs.logs.index``): the table, and on PostgreSQL its one index,
a GIN over (job, first seq, text) with btree_gin and pg_trgm, with the text stored uncompressed (a match is
rechecked against the text: decompressing 50 MB costs more than reading it)."""

from django.db import migrations, models

INDEX = "job_log_chunk_trgm"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("jobs", "JobLogChunk")._meta.db_table
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    schema_editor.execute(f"ALTER TABLE {table} ALTER COLUMN text SET STORAGE EXTERNAL")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON {table} "
        "USING gin (job_id, first_seq, text gin_trgm_ops)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("jobs", "0010_job_command_trgm")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="log_indexed_through",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="JobLogChunk",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("first_seq", models.BigIntegerField()),
                ("last_seq", models.BigIntegerField()),
                ("text", models.TextField()),
                (
                    "job",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="log_chunks",
                        to="jobs.job",
                    ),
                ),
            ],
        ),
        migrations.RunPython(create, drop, elidable=False),
    ]

"""Log marks (``jobs.logs.marks``) in place of the index on every log line's (job, timestamp):
the table, a mark for every thousandth line already stored, then the index dropped."""

import django.db.models.deletion
from django.db import migrations, models

EVERY = 1000  # jobs.logs.marks.MARK_EVERY when this was written


def mark_stored_lines(apps, schema_editor):
    lines = apps.get_model("jobs", "JobLogLine")._meta.db_table
    table = apps.get_model("jobs", "JobLogMark")._meta.db_table
    schema_editor.execute(
        f"INSERT INTO {table} (job_id, seq, timestamp) "  # noqa: S608 (table names only)
        f"SELECT job_id, seq, timestamp FROM {lines} WHERE seq %% {EVERY} = 0"
    )


class Migration(migrations.Migration):
    dependencies = [("jobs", "0011_log_chunks")]

    operations = [
        migrations.CreateModel(
            name="JobLogMark",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "job",
                        "seq",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "job",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="log_marks",
                        to="jobs.job",
                    ),
                ),
                ("seq", models.PositiveBigIntegerField()),
                ("timestamp", models.DateTimeField()),
            ],
        ),
        migrations.RunPython(mark_stored_lines, migrations.RunPython.noop, elidable=False),
        migrations.RemoveIndex(model_name="joblogline", name="job_log_time"),
    ]

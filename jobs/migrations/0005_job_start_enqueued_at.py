from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0004_runnerhost"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="start_enqueued_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]

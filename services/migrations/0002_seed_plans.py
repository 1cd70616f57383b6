from decimal import Decimal

from django.core.management import call_command
from django.db import migrations

# The seed's two tables (ids, names, memory, CPU). Monthly prices follow Render's list prices and
# are an admin's to change; jobs are billed per second at price / 30 days.
PLANS = [
    ("plan-srv-006", "Starter", "srv", 512, "0.5", "7"),
    ("plan-srv-008", "Standard", "srv", 2048, "1", "25"),
    ("plan-srv-010", "Pro", "srv", 4096, "2", "85"),
    ("plan-srv-011", "Pro Plus", "srv", 8192, "4", "175"),
    ("plan-srv-013", "Pro Max", "srv", 16384, "8", "225"),
    ("plan-srv-014", "Pro Ultra", "srv", 32768, "16", "450"),
    ("plan-crn-003", "Starter", "cron", 512, "0.5", "7"),
    ("plan-crn-005", "Standard", "cron", 2048, "1", "25"),
    ("plan-crn-007", "Pro", "cron", 4096, "2", "85"),
    ("plan-crn-008", "Pro Plus", "cron", 8192, "4", "175"),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("services", "Plan")
    for plan_id, name, kind, memory_mb, cpu, price in PLANS:
        Plan.objects.update_or_create(
            id=plan_id,
            defaults={
                "name": name,
                "kind": kind,
                "memory_mb": memory_mb,
                "cpu": Decimal(cpu),
                "price_monthly": Decimal(price),
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("services", "Plan").objects.filter(id__in=[p[0] for p in PLANS]).delete()


def create_cache_table(apps, schema_editor):
    # The embedded default keeps the shared cache (rate-limit counters) in the database.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("services", "0001_initial")]

    operations = [
        migrations.RunPython(seed, unseed),
        migrations.RunPython(create_cache_table, migrations.RunPython.noop),
    ]

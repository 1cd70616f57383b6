from django.core.management.base import BaseCommand
from django.db import connection, transaction

from services.crypto import rotate
from services.models import EnvVar, Service


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the first key of FIELD_ENCRYPTION_KEY. "
        "Rotation: put the new key first, keep the old ones after it, run this, then drop them."
    )

    def handle(self, *args, **options):
        total = 0
        # jobs sits above services, so its env snapshots are reached through the reverse of
        # EnvSnapshot.service rather than an import.
        env_snapshot = Service.env_snapshots.rel.related_model
        for model, column in ((EnvVar, "value"), (env_snapshot, "data")):
            table = model._meta.db_table
            with transaction.atomic():
                # Work on the raw tokens: the field would decrypt them on the way out.
                rows = model.objects.select_for_update().values_list("pk", flat=True)
                for pk in rows.iterator(chunk_size=500):
                    with connection.cursor() as cursor:
                        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
                        (token,) = cursor.fetchone()
                        cursor.execute(
                            f"UPDATE {table} SET {column} = %s WHERE id = %s",  # noqa: S608
                            [rotate(token), pk],
                        )
                    total += 1
        self.stdout.write(f"Re-encrypted {total} values under the first key.")

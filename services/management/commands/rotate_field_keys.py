from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import models, transaction
from django.db.models.functions import Cast

from services.crypto import EncryptedTextField, rotate

BATCH = 500  # rows locked and re-encrypted per transaction


def encrypted_fields():
    """Every (model, field) stored through EncryptedTextField, in any installed app."""
    for model in apps.get_models():
        for field in model._meta.get_fields():
            # An inherited field is rotated once, through the model that declares it.
            if isinstance(field, EncryptedTextField) and field.model is model:
                yield model, field


def rotate_field(model, field) -> int:
    """Re-encrypt one field's tokens in primary-key order, a locked batch per transaction."""
    rows = model._base_manager.exclude(**{f"{field.attname}__isnull": True}).order_by("pk")
    # A plain TextField reads and writes the stored token: the field would decrypt it on the
    # way out and encrypt it again on the way in.
    stored = Cast(field.attname, models.TextField())
    total, last = 0, None
    while True:
        with transaction.atomic():
            page = rows if last is None else rows.filter(pk__gt=last)
            batch = list(page.select_for_update().values_list("pk", stored)[:BATCH])
            for pk, token in batch:
                token = models.Value(rotate(token), output_field=models.TextField())
                model._base_manager.filter(pk=pk).update(**{field.attname: token})
        total += len(batch)
        if len(batch) < BATCH:
            return total
        last = batch[-1][0]


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the first key of FIELD_ENCRYPTION_KEY. "
        "Rotation: put the new key first, keep the old ones after it, run this, then drop them."
    )

    def handle(self, *args, **options):
        total = sum(rotate_field(model, field) for model, field in encrypted_fields())
        self.stdout.write(f"Re-encrypted {total} values under the first key.")

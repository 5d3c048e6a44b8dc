from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from portal.fields import EncryptedTextField


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted field under the first key of FIELD_ENCRYPTION_KEY. To rotate keys: set "
        "FIELD_ENCRYPTION_KEY=new,old, run this command, then remove the old key."
    )

    def handle(self, *args, **options):
        rows = 0
        for model in apps.get_models():
            names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not names:
                continue
            with transaction.atomic():
                # Reading decrypts with any configured key; writing encrypts with the primary one.
                for pk, *values in model._base_manager.select_for_update().values_list("pk", *names):
                    model._base_manager.filter(pk=pk).update(**dict(zip(names, values, strict=True)))
                    rows += 1
            self.stdout.write(f"{model._meta.label}: {', '.join(names)}")
        self.stdout.write(f"re-encrypted {rows} rows under the primary key")

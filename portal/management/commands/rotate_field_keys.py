from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from portal.fields import EncryptedTextField, opens_with_primary_key


def _encrypted_models():
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if names:
            yield model, names


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted field under the first key of FIELD_ENCRYPTION_KEY; with --verify, change "
        "nothing and check that every value opens with that key alone. Rotation (README): give every node "
        "FIELD_ENCRYPTION_KEY=new,old, run this, run --verify, then give every node FIELD_ENCRYPTION_KEY=new."
    )

    def add_arguments(self, parser):
        parser.add_argument("--verify", action="store_true", help="check only; exit 1 if any value needs the old key")

    def handle(self, *args, verify=False, **options):
        if verify:
            self._verify()
            return
        rows = 0
        for model, names in _encrypted_models():
            with transaction.atomic():
                # Reading decrypts with any configured key; writing encrypts with the primary one.
                for pk, *values in model._base_manager.select_for_update().values_list("pk", *names):
                    model._base_manager.filter(pk=pk).update(**dict(zip(names, values, strict=True)))
                    rows += 1
            self.stdout.write(f"{model._meta.label}: {', '.join(names)}")
        self.stdout.write(f"re-encrypted {rows} rows under the primary key")

    def _verify(self) -> None:
        stale = 0
        for model, names in _encrypted_models():
            for _pk, *values in model._base_manager.values_list("pk", *names):
                stale += sum(1 for value in values if value and not opens_with_primary_key(value))
        if stale:
            raise CommandError(f"{stale} values still need an old key: run rotate_field_keys (without --verify)")
        self.stdout.write("every encrypted value opens with the primary key alone")

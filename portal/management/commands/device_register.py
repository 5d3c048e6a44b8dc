from django.core.management.base import BaseCommand, CommandError

from portal import services
from portal.errors import InvalidInput
from portal.models import Store


class Command(BaseCommand):
    help = "Register a face-pay device in a store and print its secret (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--store", required=True, help="Store primary key, or merchant-scoped store_id with --merchant"
        )
        parser.add_argument("--merchant", type=int, help="Merchant primary key, when --store is a store_id")
        parser.add_argument("--device-id", default=None, help="≤32 letters/digits/_/-; generated when omitted")
        parser.add_argument("--name", default="")

    def handle(self, *args, store, merchant, device_id, name, **options):
        try:
            if merchant is not None:
                store_obj = Store.objects.get(merchant_id=merchant, store_id=store)
            else:
                store_obj = Store.objects.get(pk=int(store))
        except (Store.DoesNotExist, ValueError) as exc:
            raise CommandError("No such store (use its primary key, or --merchant with its store_id).") from exc
        try:
            device, secret = services.device_register(
                store=store_obj, device_id=device_id, name=name, actor=None, actor_label="cli"
            )
        except InvalidInput as exc:
            raise CommandError("; ".join(f"{k}: {v}" for k, v in exc.details.items()) or exc.message) from exc
        self.stdout.write(f"device_id: {device.device_id}\nsecret:    {secret}\n")
        self.stdout.write("Configure the terminal with both now; the secret will not be shown again.")

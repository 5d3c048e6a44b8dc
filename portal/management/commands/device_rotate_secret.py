from django.core.management.base import BaseCommand, CommandError

from portal import services
from portal.models import Device


class Command(BaseCommand):
    help = "Replace a device's secret (the old one stops working at once) and print the new one."

    def add_arguments(self, parser):
        parser.add_argument("--device", required=True, help="device_id")

    def handle(self, *args, device, **options):
        try:
            device_obj = Device.objects.get(device_id=device)
        except Device.DoesNotExist as exc:
            raise CommandError(f"No device {device!r}.") from exc
        secret = services.device_rotate_secret(device=device_obj, actor=None, actor_label="cli")
        self.stdout.write(f"device_id: {device_obj.device_id}\nsecret:    {secret}\n")

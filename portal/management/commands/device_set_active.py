from django.core.management.base import BaseCommand, CommandError

from portal import services
from portal.models import Device


class Command(BaseCommand):
    help = "Enable or disable a device; a disabled device's requests are refused with 403 DEVICE_DISABLED."

    def add_arguments(self, parser):
        parser.add_argument("--device", required=True, help="device_id")
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--enable", action="store_true")
        group.add_argument("--disable", action="store_true")

    def handle(self, *args, device, enable, disable, **options):
        try:
            device_obj = Device.objects.get(device_id=device)
        except Device.DoesNotExist as exc:
            raise CommandError(f"No device {device!r}.") from exc
        services.device_set_active(device=device_obj, is_active=enable, actor=None, actor_label="cli")
        self.stdout.write(f"{device_obj.device_id}: {'enabled' if enable else 'disabled'}")

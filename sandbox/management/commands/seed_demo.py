"""Demo data for the embedded default: idempotent, safe to run on every `make run`."""

import secrets
import string
from base64 import b32encode
from datetime import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import credentials as cred
from portal import services, two_factor
from portal.models import ChannelCredentials, Device, Merchant, ServiceProvider, StaffMembership, Store

DEMO_PASSWORD = "demo-pass-2026"
# The demo's published authenticator key (hex, as django-otp stores it): like the password, demo-only.
DEMO_TOTP_KEY = "64656d6f2d6f6e6c792d746f74702d6b65792d31"
DEMO_DEVICE_ID = "DEMO-DEVICE-01"
DEMO_UMPAY_DEVICE_ID = "DEMO-UMF-DEVICE-01"
DEMO_V3_DEVICE_ID = "DEMO-V3-DEVICE-01"
DEMO_ROBOT_NAME = "演示运营群 Demo operations group"


def _random_key(length: int = 32) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


class Command(BaseCommand):
    help = "Create (or keep) the demo provider, merchants, store, devices and console users, and print how to log in."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-in-production",
            action="store_true",
            help=(
                "Benchmark, fault-run and wheel-check clusters only: seed under production settings (DJANGO_ENV="
                "production), which is refused otherwise. Also needs the sandbox as the upstream (SANDBOX_ENABLED="
                "force). Never on a real deployment: the demo logins have a published password."
            ),
        )

    def _demo_alert_robot(self, provider: ServiceProvider) -> None:
        """The demo provider's alerts go to a WeCom group robot played by the sandbox: what it received is listed at
        /sandbox/robots/messages."""
        from alerts import services as alert_services
        from alerts.models import AlertChannel, RobotKind
        from sandbox.models import SandboxRobot
        from sandbox.robots import robot_create

        if AlertChannel.objects.filter(provider=provider, name=DEMO_ROBOT_NAME).exists():
            return
        robot = robot_create(SandboxRobot.Kind.WECOM)
        alert_services.channel_create(
            owner=provider,
            name=DEMO_ROBOT_NAME,
            kind=RobotKind.WECOM,
            webhook_url=f"{settings.PUBLIC_BASE_URL.rstrip('/')}/sandbox/wecom-robot/{robot.token}",
            quiet_minutes=0,
            user=None,
        )

    @transaction.atomic
    def handle(self, *args, **options):
        if settings.IS_PRODUCTION:
            # Its logins have a published password. A production-shaped cluster that plays the upstream with the
            # sandbox (make bench / make faults, scripts/wheel-check) may seed when it says so; a real deployment
            # may not, whatever its sandbox setting.
            if not options["allow_in_production"]:
                raise CommandError(
                    "seed_demo creates logins with a published password: not under production settings "
                    "(benchmark and fault-run clusters pass --allow-in-production)."
                )
            if not settings.SANDBOX_MOUNTED:
                raise CommandError(
                    "seed_demo creates logins with a published password: --allow-in-production is only for a "
                    "cluster whose upstream is the sandbox (SANDBOX_ENABLED=force)."
                )
        provider, _ = ServiceProvider.objects.get_or_create(
            code="demo-sp",
            defaults={
                "name": "演示服务商 Demo Service Provider",
                "umpay_acq_sp_id": "Y471790403",
                "wechat_appid": "wx2421b1c4370ec43b",
                "wechat_mch_id": "1900000100",
            },
        )
        direct, _ = Merchant.objects.get_or_create(
            name="演示咖啡 Demo Coffee",
            defaults={
                "provider": provider,
                "channel": Merchant.Channel.WECHAT_DIRECT,
                "appid": "wxd930ea5d5a258f4f",
                "mch_id": "10000100",
                "payscore_service_id": "00004000000000000000000000001",
            },
        )
        umf, _ = Merchant.objects.get_or_create(
            name="演示面馆 Demo Noodles",
            defaults={"provider": provider, "channel": Merchant.Channel.UMPAY, "umpay_acq_mer_id": "41509208"},
        )
        # A sub-merchant of the provider whose payments go over WeChat Pay API v3 (the provider's credentials sign).
        books, _ = Merchant.objects.get_or_create(
            name="演示书店 Demo Books",
            defaults={
                "provider": provider,
                "channel": Merchant.Channel.WECHAT_PROVIDER,
                "sub_mch_id": "1900000109",
                "wechat_api": Merchant.WechatApi.V3,
            },
        )
        for owner in (direct, provider):
            if not ChannelCredentials.objects.filter(**{"merchant" if owner is direct else "provider": owner}).exists():
                key_pem, cert_pem = cred.generate_key_and_certificate(f"demo {owner.pk}")
                umf_key, _ = cred.generate_key_and_certificate("demo umf")
                values = {
                    "wechat_api_v2_key": _random_key(),
                    "wechat_api_v3_key": _random_key(),
                    "wechat_private_key": key_pem,
                    "wechat_certificate": cert_pem,
                }
                if owner is provider:
                    values["umpay_private_key"] = umf_key
                services.credentials_update(owner=owner, values=values, actor=None, actor_label="seed_demo")

        if settings.SANDBOX_MOUNTED:
            # The sandbox plays WeChat Pay and UMF: exchange keys with it as an operator would with the real ones.
            from sandbox.connect import sandbox_connect_merchant

            for merchant in (direct, umf, books):
                sandbox_connect_merchant(merchant)

        store, _ = Store.objects.get_or_create(
            merchant=direct,
            store_id="SZ-NS-001",
            defaults={
                "name": "南山科技园店",
                "address": "深圳市南山区科技园",
                "area_code": "440305",
                "opens_at": time(8, 0),  # its terminal offline in these hours is an alert
                "closes_at": time(22, 0),
            },
        )
        umf_store, _ = Store.objects.get_or_create(
            merchant=umf,
            store_id="BJ-HD-001",
            defaults={"name": "海淀中关村店", "address": "北京市海淀区中关村", "area_code": "110108"},
        )
        books_store, _ = Store.objects.get_or_create(
            merchant=books,
            store_id="SZ-FT-001",
            defaults={"name": "福田中心书店", "address": "深圳市福田区福华路", "area_code": "440304"},
        )
        devices = []
        for device_id, device_store in (
            (DEMO_DEVICE_ID, store),
            (DEMO_UMPAY_DEVICE_ID, umf_store),
            (DEMO_V3_DEVICE_ID, books_store),
        ):
            device = Device.objects.filter(device_id=device_id).first()
            if device is None:
                device, _secret = services.device_register(
                    store=device_store, device_id=device_id, name="Demo terminal", actor=None, actor_label="seed_demo"
                )
            devices.append(device)

        if settings.SANDBOX_MOUNTED and not settings.IS_PRODUCTION:
            # (Production-shaped benchmark clusters send no alerts to a chat: their robot addresses must be https.)
            self._demo_alert_robot(provider)

        User = get_user_model()
        users = [
            ("admin", None, None, True),
            ("demo-provider", StaffMembership.Role.PROVIDER_ADMIN, provider, False),
            ("demo-reviewer", StaffMembership.Role.PROVIDER_REVIEWER, provider, False),
            ("demo-merchant", StaffMembership.Role.MERCHANT_ADMIN, direct, False),
            ("demo-staff", StaffMembership.Role.MERCHANT_STAFF, direct, False),
        ]
        for username, role, owner, is_superuser in users:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User.objects.create_user(username=username, password=DEMO_PASSWORD)
                user.is_staff = user.is_superuser = is_superuser
                user.save()
            if role and not StaffMembership.objects.filter(user=user).exists():
                key = "provider" if role in StaffMembership.PROVIDER_ROLES else "merchant"
                StaffMembership.objects.create(user=user, role=role, **{key: owner})
            # Roles that move or settle money sign in with a second factor: the demo's is enrolled with the
            # published key (unless the user enrolled an authenticator of their own).
            if two_factor.required(user) and not two_factor.has_device(user):
                TOTPDevice.objects.create(user=user, name="demo", key=DEMO_TOTP_KEY, confirmed=True)

        self.stdout.write("Demo data ready.")
        self.stdout.write(
            f"  Console logins (password {DEMO_PASSWORD}): admin (platform), demo-provider, demo-reviewer, "
            "demo-merchant, demo-staff (merchant staff)"
        )
        demo_key = b32encode(bytes.fromhex(DEMO_TOTP_KEY)).decode()
        self.stdout.write(
            "  Second step of signing in (all but demo-staff): the code of an authenticator app holding the demo key "
            f"{demo_key}, or the current one from\n"
            f"    .venv/bin/python -c \"from django_otp.oath import totp; print('%06d' % totp(bytes.fromhex("
            f"'{DEMO_TOTP_KEY}')))\"\n"
            "    (a code signs a user in once: for another sign-in of the same user within 30 s, wait for the next)"
        )
        for device in devices:
            # Demo devices only: a real device's secret is shown once at registration and never again.
            self.stdout.write(
                f"  Demo device {device.device_id} ({device.store.merchant.get_channel_display()}): "
                f"secret {device.secret.reveal()}"
            )
        self.stdout.write(
            "  Try a payment:  .venv/bin/python manage.py terminal_simulate --device DEMO-DEVICE-01 --amount 1234\n"
            "  A slow one:     .venv/bin/python manage.py terminal_simulate --device DEMO-DEVICE-01 "
            "--scenario USERPAYING_THEN_SUCCESS\n"
            "  Through UMF:    .venv/bin/python manage.py terminal_simulate --device DEMO-UMF-DEVICE-01 --amount 800\n"
            "  Over API v3:    .venv/bin/python manage.py terminal_simulate --device DEMO-V3-DEVICE-01 --amount 2500"
        )
        self.stdout.write(
            "  Alerts: /alerts/ in the console; what the demo group's robot received: /sandbox/robots/messages"
        )

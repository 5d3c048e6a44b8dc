"""Rotate a sandbox merchant's WeChat Pay platform certificate, to watch the product pick up the new one."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from sandbox import book, clock, services
from sandbox.models import SandboxWechatMerchant


class Command(BaseCommand):
    help = (
        "Issue a new platform certificate for a sandbox WeChat merchant: listed by /v3/certificates at once, signing "
        "answers after --switch-in seconds; the old one stays listed until it expires."
    )

    def add_arguments(self, parser):
        parser.add_argument("--mch-id", required=True, help="the merchant's (or service provider's) mch_id")
        parser.add_argument(
            "--switch-in",
            type=float,
            default=None,
            help="seconds until answers are signed with the new certificate (default SANDBOX_PLATFORM_SWITCH_SECONDS)",
        )
        parser.add_argument(
            "--expire-old-in",
            type=float,
            default=None,
            help="seconds until the certificates in force now expire (default: their own five-year expiry)",
        )

    def handle(self, *args, mch_id, switch_in, expire_old_in, **options):
        if not SandboxWechatMerchant.objects.filter(mch_id=mch_id).exists():
            raise CommandError(f"No sandbox WeChat merchant {mch_id!r}; connect it first (seed_demo does).")
        now = clock.now()
        switch_at = now + timedelta(seconds=switch_in) if switch_in is not None else None
        old_expire_at = now + timedelta(seconds=expire_old_in) if expire_old_in is not None else None
        new = services.sandbox_rotate_platform_certificate(mch_id, switch_at=switch_at, old_expire_at=old_expire_at)
        self.stdout.write(f"New platform certificate {new.serial_no} for {mch_id}")
        self.stdout.write(f"  listed from now; signs from {book.rfc3339(new.signs_from)}")
        for certificate in services.sandbox_platform_certificates(mch_id):
            self.stdout.write(
                f"  listed: {certificate.serial_no} {book.rfc3339(certificate.effective_at)} → "
                f"{book.rfc3339(certificate.expires_at)}"
            )

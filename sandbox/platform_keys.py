"""Which platform key signs a merchant's v3 answers and notifications, and which certificates /v3/certificates lists.

A merchant has platform certificates (SandboxWechatPlatformCertificate) and one platform public key (PUB_KEY_ID_…),
and a key mode:

- CERTIFICATE: answers are signed with the certificate in force — the latest whose `signs_from` has come and which
  has not expired — and Wechatpay-Serial is its serial;
- PUBLIC_KEY: signed with the public key, Wechatpay-Serial = PUB_KEY_ID_…;
- TRANSITION: each answer is signed with one or the other, picked at random, and Wechatpay-Serial says which (a
  merchant in the middle of switching must accept both).

Rotation (`rotate`) issues a certificate that is listed at once but signs only from a later moment, so a client
that refreshes its certificates in time never sees an unknown serial; the old one stays listed until it expires.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from payments.gateways import wechatpay_v3 as v3
from payments.gateways.keys import certificate_serial

from . import clock
from .models import SandboxWechatMerchant, SandboxWechatPlatformCertificate

KeyMode = SandboxWechatMerchant.KeyMode

# WeChat's platform certificates are valid for five years.
CERTIFICATE_VALIDITY = timedelta(days=5 * 365)
# Chance source for TRANSITION mode; tests replace it with a seeded or scripted random.
rng: random.Random = random.SystemRandom()


def switch_seconds() -> float:
    """How long after a rotation answers are still signed with the old certificate (SANDBOX_PLATFORM_SWITCH_SECONDS):
    the time merchants have to download the new one."""
    return float(getattr(settings, "SANDBOX_PLATFORM_SWITCH_SECONDS", 60))


@dataclass(frozen=True)
class SigningKey:
    serial: str  # Wechatpay-Serial: a certificate serial or a PUB_KEY_ID_…
    private_key_pem: str


def listed(merchant: SandboxWechatMerchant, now: datetime | None = None) -> list[SandboxWechatPlatformCertificate]:
    """The certificates /v3/certificates lists: those not expired, oldest first."""
    now = now or clock.now()
    return list(merchant.platform_certificates.filter(expires_at__gt=now).order_by("effective_at", "pk"))


def certificate_in_force(
    merchant: SandboxWechatMerchant, now: datetime | None = None
) -> SandboxWechatPlatformCertificate:
    """The certificate that signs now. Were none both switched to and unexpired (an operator expired the old one
    before the new one's switch), the next one to switch signs at once, as WeChat never leaves a merchant without a
    certificate; if every certificate has expired, the newest still signs (clients will refuse it, as they should).
    """
    now = now or clock.now()
    certificates = list(merchant.platform_certificates.order_by("signs_from", "pk"))
    if not certificates:
        raise LookupError(f"sandbox merchant {merchant.mch_id} has no platform certificate")
    valid = [c for c in certificates if c.expires_at > now]
    switched = [c for c in valid if c.signs_from <= now]
    if switched:
        return switched[-1]
    if valid:
        return valid[0]
    return certificates[-1]


def _public_key(merchant: SandboxWechatMerchant) -> SigningKey:
    return SigningKey(merchant.platform_public_key_id, merchant.platform_private_key_pem.reveal())


def _certificate(merchant: SandboxWechatMerchant, now: datetime | None) -> SigningKey:
    certificate = certificate_in_force(merchant, now)
    return SigningKey(certificate.serial_no, certificate.private_key_pem.reveal())


def signing_key(merchant: SandboxWechatMerchant, *, now: datetime | None = None) -> SigningKey:
    if merchant.key_mode == KeyMode.PUBLIC_KEY:
        return _public_key(merchant)
    if merchant.key_mode == KeyMode.TRANSITION and rng.random() < 0.5:
        return _public_key(merchant)
    return _certificate(merchant, now)


def certificate_signing_key(merchant: SandboxWechatMerchant, *, now: datetime | None = None) -> SigningKey:
    """The certificate in force, whatever the mode (the /v3/certificates answer of a merchant that has
    certificates is signed by one of them, so a client can check it against what it downloads)."""
    return _certificate(merchant, now)


def sign(merchant: SandboxWechatMerchant, body: str | bytes, *, key: SigningKey | None = None) -> dict[str, str]:
    """The Wechatpay-* headers for a body, signed with `key` or with the merchant's signing key now."""
    key = key or signing_key(merchant)
    return v3.sign_response(body, serial=key.serial, private_key=key.private_key_pem, timestamp=int(clock.timestamp()))


def add_certificate(
    merchant: SandboxWechatMerchant,
    *,
    private_key_pem: str,
    certificate_pem: str,
    signs_from: datetime,
    now: datetime | None = None,
) -> SandboxWechatPlatformCertificate:
    """Record a certificate, effective now and valid for CERTIFICATE_VALIDITY (the sandbox's own dates, on its
    clock; the PEM's validity is the generator's and may differ)."""
    now = now or clock.now()
    return SandboxWechatPlatformCertificate.objects.create(
        merchant=merchant,
        serial_no=certificate_serial(certificate_pem),
        private_key_pem=private_key_pem,
        certificate_pem=certificate_pem,
        effective_at=now,
        expires_at=now + CERTIFICATE_VALIDITY,
        signs_from=signs_from,
        created_at=now,
    )


@transaction.atomic
def rotate(
    merchant: SandboxWechatMerchant,
    *,
    private_key_pem: str,
    certificate_pem: str,
    switch_at: datetime | None = None,
    old_expire_at: datetime | None = None,
) -> SandboxWechatPlatformCertificate:
    """Publish a new certificate now; sign with it from `switch_at` (default: now + switch_seconds()). The
    certificates valid until now expire at `old_expire_at` when given (never later than they would have)."""
    now = clock.now()
    switch_at = switch_at or now + timedelta(seconds=switch_seconds())
    previous = list(merchant.platform_certificates.select_for_update().filter(expires_at__gt=now))
    new = add_certificate(
        merchant, private_key_pem=private_key_pem, certificate_pem=certificate_pem, signs_from=switch_at, now=now
    )
    if old_expire_at is not None:
        for certificate in previous:
            if old_expire_at < certificate.expires_at:
                certificate.expires_at = old_expire_at
                certificate.save(update_fields=["expires_at"])
    return new


def expire(merchant: SandboxWechatMerchant, serial_no: str, *, at: datetime | None = None) -> None:
    """The certificate `serial_no` expires at `at` (default now): no longer listed, no longer signing."""
    certificate = merchant.platform_certificates.get(serial_no=serial_no)
    certificate.expires_at = at or clock.now()
    certificate.save(update_fields=["expires_at"])

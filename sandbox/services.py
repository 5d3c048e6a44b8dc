"""The sandbox's Python API: register merchants the way WeChat Pay / UMF onboarding would, preset scenarios, act as
the PayScore user, deliver owed notifications, and read the ledger.

Registration hands back what the real service would give a merchant (platform certificate and public key, UMF's
certificate); the product stores those in its ChannelCredentials like real ones. Platform certificates can then be
rotated (`sandbox_rotate_platform_certificate`), as WeChat does before one expires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from django.db import transaction

from payments.gateways.keys import certificate_serial, load_public_key
from portal.credentials import generate_key_and_certificate

from . import book, clock, identity, outbox, payscore, platform_keys
from .models import (
    SandboxPayscoreOrder,
    SandboxScenarioPreset,
    SandboxUmpayIdentity,
    SandboxUmpayProvider,
    SandboxWechatMerchant,
    SandboxWechatPlatformCertificate,
    SandboxWechatSubMerchant,
)
from .scenarios import parse

KeyMode = SandboxWechatMerchant.KeyMode


def _public_key_pem(certificate_pem: str) -> str:
    return (
        load_public_key(certificate_pem)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


@transaction.atomic
def sandbox_register_wechat_merchant(
    *,
    mch_id: str,
    appid: str,
    api_v2_key: str,
    api_v3_key: str,
    merchant_certificate_pem: str,
    key_mode: str = "CERTIFICATE",
) -> SandboxWechatMerchant:
    """Idempotent per mch_id: a second call updates keys and mode, the platform keys stay.

    The first registration makes one platform key pair, handed out both as the first platform certificate and as
    the platform public key (PUB_KEY_ID_…). `key_mode` (SandboxWechatMerchant.KeyMode: CERTIFICATE, PUBLIC_KEY or
    TRANSITION) says which signs v3 answers.
    """
    mode = KeyMode(key_mode)
    serial = certificate_serial(merchant_certificate_pem)
    merchant = SandboxWechatMerchant.objects.select_for_update().filter(mch_id=mch_id).first()
    if merchant is None:
        key_pem, cert_pem = generate_key_and_certificate(f"Sandbox WeChat Pay platform {mch_id}")
        merchant = SandboxWechatMerchant(
            mch_id=mch_id,
            platform_private_key_pem=key_pem,
            platform_certificate_pem=cert_pem,
            platform_certificate_serial=certificate_serial(cert_pem),
            platform_public_key_pem=_public_key_pem(cert_pem),
            platform_public_key_id=identity.public_key_id(),
        )
    merchant.appid = appid
    merchant.api_v2_key = api_v2_key
    merchant.api_v3_key = api_v3_key
    merchant.merchant_certificate_pem = merchant_certificate_pem
    merchant.merchant_certificate_serial = serial
    merchant.key_mode = mode
    merchant.save()
    if not merchant.platform_certificates.exists():
        platform_keys.add_certificate(
            merchant,
            private_key_pem=merchant.platform_private_key_pem.reveal(),
            certificate_pem=merchant.platform_certificate_pem,
            signs_from=clock.now(),
        )
    return merchant


def sandbox_platform_certificates(
    mch_id: str, *, now: datetime | None = None
) -> list[SandboxWechatPlatformCertificate]:
    """The merchant's platform certificates /v3/certificates lists now (not expired), oldest first."""
    return platform_keys.listed(SandboxWechatMerchant.objects.get(mch_id=mch_id), now)


def sandbox_rotate_platform_certificate(
    mch_id: str, *, switch_at: datetime | None = None, old_expire_at: datetime | None = None
) -> SandboxWechatPlatformCertificate:
    """Issue a new platform certificate: listed by /v3/certificates at once, signing answers from `switch_at`
    (default: now + SANDBOX_PLATFORM_SWITCH_SECONDS, 60 s unless set); until then the old one signs. The old ones stay
    listed until they expire, at `old_expire_at` if given (else five years after they were issued)."""
    merchant = SandboxWechatMerchant.objects.get(mch_id=mch_id)
    # A fresh common name per rotation: every certificate has its own key pair and serial.
    number = merchant.platform_certificates.count() + 1
    key_pem, cert_pem = generate_key_and_certificate(f"Sandbox WeChat Pay platform {mch_id} #{number}")
    return platform_keys.rotate(
        merchant,
        private_key_pem=key_pem,
        certificate_pem=cert_pem,
        switch_at=switch_at,
        old_expire_at=old_expire_at,
    )


def sandbox_expire_platform_certificate(mch_id: str, serial_no: str, *, at: datetime | None = None) -> None:
    """Make one platform certificate expire at `at` (default now): it is no longer listed nor used to sign."""
    platform_keys.expire(SandboxWechatMerchant.objects.get(mch_id=mch_id), serial_no, at=at)


def sandbox_register_sub_merchant(*, provider_mch_id: str, sub_mch_id: str) -> SandboxWechatSubMerchant:
    provider = SandboxWechatMerchant.objects.get(mch_id=provider_mch_id)
    sub, _ = SandboxWechatSubMerchant.objects.get_or_create(provider=provider, sub_mch_id=sub_mch_id)
    return sub


@transaction.atomic
def _umpay_identity() -> SandboxUmpayIdentity:
    identity_row = SandboxUmpayIdentity.objects.select_for_update().order_by("pk").first()
    if identity_row is None:
        key_pem, cert_pem = generate_key_and_certificate("Sandbox UMF")
        identity_row = SandboxUmpayIdentity.objects.create(private_key_pem=key_pem, certificate_pem=cert_pem)
    return identity_row


def sandbox_umpay_certificate_pem() -> str:
    """UMF's certificate (the product stores it as `umpay_certificate`)."""
    return _umpay_identity().certificate_pem


@transaction.atomic
def sandbox_register_umpay_provider(
    *, acq_sp_id: str, merchant_public_pem_or_cert: str, acq_mer_ids: list[str]
) -> SandboxUmpayProvider:
    """Idempotent per acqSpId (replaces the key and the merchant list). UMF's key pair is generated once for the
    whole sandbox; read it with `sandbox_umpay_certificate_pem()` or `provider.umpay_certificate_pem`."""
    load_public_key(merchant_public_pem_or_cert)  # refuse an unusable key now, not at the first request
    _umpay_identity()
    provider, _ = SandboxUmpayProvider.objects.update_or_create(
        acq_sp_id=acq_sp_id,
        defaults={"merchant_public_pem": merchant_public_pem_or_cert, "acq_mer_ids": list(acq_mer_ids)},
    )
    return provider


def sandbox_preset_scenario(*, out_trade_no: str, scenario: str) -> None:
    """Choose the scenario for an order number before the product sends it (WeChat out_trade_no, UMF orderNo or
    PayScore out_order_no). The request header still wins."""
    SandboxScenarioPreset.objects.update_or_create(order_no=out_trade_no, defaults={"scenario": parse(scenario).value})


def preset_for(order_no: str) -> str | None:
    try:
        return SandboxScenarioPreset.objects.values_list("scenario", flat=True).get(order_no=order_no)
    except SandboxScenarioPreset.DoesNotExist:
        return None


def sandbox_payscore_user_confirm(out_order_no: str, *, mchid: str | None = None) -> SandboxPayscoreOrder:
    """The user confirms the service order: CREATED → DOING/USER_CONFIRM, PAYSCORE.USER_CONFIRM owed."""
    with transaction.atomic():
        return payscore.user_confirm(_payscore_order(out_order_no, mchid))


def sandbox_payscore_user_pay(out_order_no: str, *, mchid: str | None = None) -> SandboxPayscoreOrder:
    """WeChat collects the completed amount: → DONE, collection USER_PAID, PAYSCORE.USER_PAID owed."""
    with transaction.atomic():
        return payscore.user_pay(_payscore_order(out_order_no, mchid))


def _payscore_order(out_order_no: str, mchid: str | None) -> SandboxPayscoreOrder:
    orders = SandboxPayscoreOrder.objects.select_for_update().filter(out_order_no=out_order_no)
    if mchid:
        orders = orders.filter(mchid=mchid)
    return orders.get()


def sandbox_deliver_due_notifications(*, client: httpx.Client | None = None, now: datetime | None = None) -> int:
    """Apply due transitions, then send due notifications; returns how many the receivers accepted."""
    book.advance(now)
    return outbox.deliver_due(client=client, now=now)


def sandbox_ledger(now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """order number → {channel, charged, refunded, refund_pending, state}; amounts in fen. See book.ledger."""
    return book.ledger(now)


def sandbox_plant_bill_difference(*, order_no: str, kind: str) -> None:
    """Make the sandbox's bills disagree with its ledger for one order (out_trade_no) or refund (out_refund_no)."""
    from .models import SandboxBillPlant

    SandboxBillPlant.objects.update_or_create(order_no=order_no, defaults={"kind": SandboxBillPlant.Kind(kind)})

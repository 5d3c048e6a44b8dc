"""Register a product merchant with the sandbox, and store the sandbox's public keys in its credentials.

The one bridge between the product's configuration and the sandbox's own registry: what an operator does by
hand with real WeChat Pay / UMF (exchange keys) is done here in one call, for the demo and for tests.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from portal import credentials as cred
from portal.models import Merchant
from portal.selectors import signing_credentials_for
from portal.services import credentials_update
from sandbox import services as sandbox


def _reveal(value) -> str:
    return value.reveal() if value else ""


def sandbox_connect_merchant(merchant: Merchant, *, key_mode: str = "CERTIFICATE") -> None:
    """Register `merchant` (its provider, for a sub-merchant) and store what the sandbox hands back. `key_mode`
    (CERTIFICATE, PUBLIC_KEY, TRANSITION) is how the sandbox signs its v3 answers.
    The platform certificates stored are every one /v3/certificates lists now, so connecting again after a rotation
    hands the product the new one too."""
    credentials = signing_credentials_for(merchant)
    if credentials is None:
        raise ValueError(f"{merchant} has no channel credentials to register with the sandbox")
    if merchant.channel == Merchant.Channel.UMPAY:
        provider = merchant.provider
        key = cred.load_private_key("umpay_private_key", _reveal(credentials.umpay_private_key))
        public_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )
        acq_mer_ids = list(
            provider.merchants.filter(channel=Merchant.Channel.UMPAY)
            .exclude(umpay_acq_mer_id="")
            .values_list("umpay_acq_mer_id", flat=True)
        )
        registered = sandbox.sandbox_register_umpay_provider(
            acq_sp_id=provider.umpay_acq_sp_id, merchant_public_pem_or_cert=public_pem, acq_mer_ids=acq_mer_ids
        )
        credentials_update(
            owner=provider,
            values={"umpay_certificate": registered.umpay_certificate_pem},
            actor=None,
            actor_label="sandbox",
        )
        return
    if merchant.channel == Merchant.Channel.WECHAT_PROVIDER:
        owner, mch_id, appid = merchant.provider, merchant.provider.wechat_mch_id, merchant.provider.wechat_appid
    else:
        owner, mch_id, appid = merchant, merchant.mch_id, merchant.appid
    registered = sandbox.sandbox_register_wechat_merchant(
        mch_id=mch_id,
        appid=appid,
        api_v2_key=_reveal(credentials.wechat_api_v2_key),
        api_v3_key=_reveal(credentials.wechat_api_v3_key),
        merchant_certificate_pem=_reveal(credentials.wechat_certificate),
        key_mode=key_mode,
    )
    if merchant.channel == Merchant.Channel.WECHAT_PROVIDER:
        sandbox.sandbox_register_sub_merchant(provider_mch_id=mch_id, sub_mch_id=merchant.sub_mch_id)
    credentials_update(
        owner=owner,
        values={
            "wechat_platform_certificates": "".join(
                c.certificate_pem for c in sandbox.sandbox_platform_certificates(registered.mch_id)
            ),
            "wechat_platform_public_key": registered.platform_public_key_pem,
            "wechat_platform_public_key_id": registered.platform_public_key_id,
        },
        actor=None,
        actor_label="sandbox",
    )

"""Credentials are validated when entered; a bad one is a clear error and nothing is stored."""

import pytest
from cryptography.hazmat.primitives import serialization

from portal import credentials as cred
from portal import services
from portal.errors import InvalidInput
from portal.models import ChannelCredentials
from tests.factories import MerchantFactory, ServiceProviderFactory

pytestmark = pytest.mark.django_db


def update(owner, **values):
    return services.credentials_update(owner=owner, values=values, actor=None, actor_label="test")


@pytest.mark.parametrize("key", ["short", "x" * 33, "192006250b4c09247ec02edce69f6a2!", ""])
def test_v2_key_must_be_32_alphanumerics(key):
    merchant = MerchantFactory()
    if key == "":
        update(merchant, wechat_api_v2_key=key)  # blank means "keep": no error, nothing set
        assert not ChannelCredentials.objects.get(merchant=merchant).wechat_api_v2_key
        return
    with pytest.raises(InvalidInput) as error:
        update(merchant, wechat_api_v2_key=key)
    assert set(error.value.details) == {"wechat_api_v2_key"}
    assert not ChannelCredentials.objects.filter(merchant=merchant).exists()


def test_unparseable_private_key_is_a_field_error():
    merchant = MerchantFactory()
    with pytest.raises(InvalidInput) as error:
        update(merchant, wechat_private_key="-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    assert error.value.details == {
        "wechat_private_key": "This is not a readable private key (expected PEM or PKCS#8 DER, no password)."
    }


def test_certificate_of_another_key_is_rejected_and_nothing_stored():
    merchant = MerchantFactory()
    key_pem, _ = cred.generate_key_and_certificate("mine")
    _, other_cert = cred.generate_key_and_certificate("someone else")
    with pytest.raises(InvalidInput) as error:
        update(merchant, wechat_private_key=key_pem, wechat_certificate=other_cert, wechat_api_v2_key="a" * 32)
    assert error.value.details == {
        "wechat_certificate": "This certificate does not belong to the merchant private key."
    }
    assert not ChannelCredentials.objects.filter(merchant=merchant).exists()


def test_new_certificate_is_checked_against_the_stored_key():
    merchant = MerchantFactory()
    key_pem, cert_pem = cred.generate_key_and_certificate("mine")
    update(merchant, wechat_private_key=key_pem, wechat_certificate=cert_pem)
    _, other_cert = cred.generate_key_and_certificate("other")
    with pytest.raises(InvalidInput):
        update(merchant, wechat_certificate=other_cert)
    stored = ChannelCredentials.objects.get(merchant=merchant)
    assert stored.wechat_certificate.reveal() == cert_pem


def test_matching_pair_stores_serial_in_upper_hex():
    merchant = MerchantFactory()
    key_pem, cert_pem = cred.generate_key_and_certificate("mine")
    stored = update(merchant, wechat_private_key=key_pem, wechat_certificate=cert_pem)
    expected = format(cred.load_certificate("c", cert_pem).serial_number, "X")
    assert stored.wechat_cert_serial == expected
    assert ChannelCredentials.objects.get(pk=stored.pk).wechat_cert_serial == expected


def test_umpay_p8_der_key_and_der_certificate_are_accepted(tmp_path):
    provider = ServiceProviderFactory()
    key_pem, cert_pem = cred.generate_key_and_certificate("umf")
    key = cred.load_private_key("k", key_pem)
    der_key = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der_cert = cred.load_certificate("c", cert_pem).public_bytes(serialization.Encoding.DER)
    stored = update(provider, umpay_private_key=der_key, umpay_certificate=der_cert)
    assert stored.umpay_private_key.reveal().startswith("-----BEGIN PRIVATE KEY-----")
    assert stored.umpay_certificate.startswith("-----BEGIN CERTIFICATE-----")


def test_v3_key_and_platform_public_key_id_rules():
    merchant = MerchantFactory()
    with pytest.raises(InvalidInput) as error:
        update(merchant, wechat_api_v3_key="too-short")
    assert set(error.value.details) == {"wechat_api_v3_key"}
    key_pem, _ = cred.generate_key_and_certificate("platform")
    public_pem = (
        cred.load_private_key("k", key_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(InvalidInput) as error:
        update(merchant, wechat_platform_public_key=public_pem)
    assert set(error.value.details) == {"wechat_platform_public_key_id"}
    stored = update(
        merchant,
        wechat_platform_public_key=public_pem,
        wechat_platform_public_key_id="PUB_KEY_ID_0112345678202411150011000000",
    )
    assert stored.wechat_platform_public_key_id.startswith("PUB_KEY_ID_")


def test_unknown_fields_are_refused():
    with pytest.raises(InvalidInput) as error:
        update(MerchantFactory(), api_key="a" * 32)
    assert error.value.details == {"api_key": "Unknown credential field."}


def test_signing_credentials_follow_the_channel():
    from portal.models import Merchant
    from portal.selectors import signing_credentials_for

    provider = ServiceProviderFactory()
    direct = MerchantFactory(provider=provider)
    sub = MerchantFactory(provider=provider, channel=Merchant.Channel.WECHAT_PROVIDER, sub_mch_id="1900000109")
    provider_creds = update(provider, wechat_api_v2_key="p" * 32)
    direct_creds = update(direct, wechat_api_v2_key="d" * 32)
    assert signing_credentials_for(direct) == direct_creds
    assert signing_credentials_for(sub) == provider_creds

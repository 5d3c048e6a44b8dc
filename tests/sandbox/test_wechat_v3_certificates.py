"""`/v3/certificates` and platform-key rotation: what is listed, what signs, and the key modes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from payments import channels
from payments.gateways import wechatpay_v3 as v3
from payments.gateways.base import VerificationError
from portal.selectors import signing_credentials_for
from sandbox import platform_keys, services
from sandbox.models import SandboxWechatMerchant

from .conftest import API_V3_KEY, APPID, AUTH_CODE, MCH_ID
from .v3_client import V3Client

pytestmark = pytest.mark.django_db
CERTIFICATES = "/v3/certificates"


@pytest.fixture
def client(wechat_merchant, merchant_keys, http_client, sandbox_clock) -> V3Client:
    return V3Client(http_client, sandbox_clock, mchid=MCH_ID, keys=merchant_keys)


def download(client: V3Client) -> dict[str, dict]:
    """serial → {effective_time, expire_time, pem}, decrypted with the APIv3 key and checked like a merchant would:
    the PEM's own serial is the one listed, and the answer verifies with one of the certificates it carries."""
    response = client.get(CERTIFICATES)
    assert response.status_code == 200, response.text
    found = {}
    for item in response.json()["data"]:
        encrypted = item["encrypt_certificate"]
        assert (encrypted["algorithm"], encrypted["associated_data"]) == ("AEAD_AES_256_GCM", "certificate")
        pem = v3.decrypt_resource(encrypted, api_v3_key=API_V3_KEY).decode("ascii")
        assert v3.certificate_serial(pem) == item["serial_no"]
        found[item["serial_no"]] = {"effective_time": item["effective_time"], "expire_time": item["expire_time"]}
        found[item["serial_no"]]["pem"] = pem
    client.verify(response, {serial: item["pem"] for serial, item in found.items()})
    return found


def signer_of_answers(client: V3Client, out_trade_no: str) -> str:
    """Wechatpay-Serial of a payment answer, verified with exactly the key that serial names."""
    paid = client.post(
        "/v3/pay/transactions/codepay",
        {
            "appid": APPID,
            "mchid": MCH_ID,
            "description": "d",
            "out_trade_no": out_trade_no,
            "amount": {"total": 100},
            "payer": {"auth_code": AUTH_CODE},
            "scene_info": {"device_ip": "10.0.0.8"},
        },
    )
    assert paid.status_code == 200
    merchant = SandboxWechatMerchant.objects.get(mch_id=MCH_ID)
    serial = paid.headers["Wechatpay-Serial"]
    if serial == merchant.platform_public_key_id:
        key = merchant.platform_public_key_pem
    else:
        key = merchant.platform_certificates.get(serial_no=serial).certificate_pem
    return client.verify(paid, {serial: key})


def test_certificates_decrypt_with_the_api_v3_key(client, wechat_merchant):
    listed = download(client)

    assert list(listed) == [wechat_merchant.platform_certificate_serial]
    only = listed[wechat_merchant.platform_certificate_serial]
    assert only["pem"].strip() == wechat_merchant.platform_certificate_pem.strip()
    assert only["effective_time"].endswith("+08:00") and only["expire_time"].endswith("+08:00")
    assert only["expire_time"][:4] == str(int(only["effective_time"][:4]) + 5)


def test_certificates_do_not_decrypt_with_another_key(client):
    item = client.get(CERTIFICATES).json()["data"][0]
    with pytest.raises(VerificationError):
        v3.decrypt_resource(item["encrypt_certificate"], api_v3_key="x" * 32)


def test_rotation_publishes_first_switches_later_and_drops_the_old_at_expiry(
    client, wechat_merchant, sandbox_clock, settings
):
    settings.SANDBOX_PLATFORM_SWITCH_SECONDS = 120
    old = wechat_merchant.platform_certificate_serial

    new = services.sandbox_rotate_platform_certificate(MCH_ID, old_expire_at=sandbox_clock.now() + timedelta(hours=1))

    # Before the switch: both listed, answers still signed by the old one.
    assert new.serial_no != old and set(download(client)) == {old, new.serial_no}
    assert signer_of_answers(client, "R1") == old
    sandbox_clock.advance(119)
    assert signer_of_answers(client, "R2") == old

    # After the switch: signed by the new one; a client that only knows the old one cannot verify.
    sandbox_clock.advance(2)
    assert signer_of_answers(client, "R3") == new.serial_no
    response = client.get(f"/v3/pay/transactions/out-trade-no/R3?mchid={MCH_ID}")
    with pytest.raises(VerificationError, match="unknown Wechatpay-Serial"):
        client.verify(response, {old: wechat_merchant.platform_certificate_pem})
    assert set(download(client)) == {old, new.serial_no}

    # After the old one's expiry: only the new one is listed.
    sandbox_clock.advance(3600)
    assert list(download(client)) == [new.serial_no]
    assert signer_of_answers(client, "R4") == new.serial_no


def test_switch_at_and_expiring_one_serial(client, wechat_merchant, sandbox_clock):
    old = wechat_merchant.platform_certificate_serial
    new = services.sandbox_rotate_platform_certificate(MCH_ID, switch_at=sandbox_clock.now() + timedelta(seconds=10))
    assert signer_of_answers(client, "S1") == old

    # The old one expired before the switch: the new one signs at once (never no certificate).
    services.sandbox_expire_platform_certificate(MCH_ID, old)

    assert list(download(client)) == [new.serial_no]
    assert signer_of_answers(client, "S2") == new.serial_no


def test_notifications_follow_the_rotation(client, wechat_merchant, sandbox_clock):
    new = services.sandbox_rotate_platform_certificate(MCH_ID, switch_at=sandbox_clock.now())
    key = platform_keys.signing_key(wechat_merchant)
    assert key.serial == new.serial_no
    headers = platform_keys.sign(wechat_merchant, b"{}")
    assert v3.verify_response(
        headers, b"{}", platform_keys={new.serial_no: new.certificate_pem}, clock=sandbox_clock.timestamp
    )


def test_public_key_mode_has_no_certificates_and_signs_with_the_public_key(
    wechat_merchant, merchant_keys, http_client, sandbox_clock
):
    services.sandbox_register_wechat_merchant(
        mch_id=MCH_ID,
        appid=APPID,
        api_v2_key="a" * 32,
        api_v3_key=API_V3_KEY,
        merchant_certificate_pem=merchant_keys.cert_pem,
        key_mode="PUBLIC_KEY",
    )
    wechat_merchant.refresh_from_db()
    public = {wechat_merchant.platform_public_key_id: wechat_merchant.platform_public_key_pem}
    client = V3Client(http_client, sandbox_clock, mchid=MCH_ID, keys=merchant_keys, platform_keys=public)

    refused = client.get(CERTIFICATES)

    assert (refused.status_code, refused.json()["code"]) == (404, "RESOURCE_NOT_EXISTS")
    assert client.verify(refused) == wechat_merchant.platform_public_key_id
    assert signer_of_answers(client, "K1") == wechat_merchant.platform_public_key_id


class Alternating:
    """random() alternates below and above one half: public key, certificate, public key, …"""

    def __init__(self) -> None:
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return 0.25 if self.calls % 2 else 0.75


def test_transition_mode_signs_with_both_kinds(client, wechat_merchant, merchant_keys, sandbox_clock, monkeypatch):
    # A rotated certificate first, so the certificate's key is not the public key's (they share one at registration).
    new = services.sandbox_rotate_platform_certificate(MCH_ID, switch_at=sandbox_clock.now())
    services.sandbox_register_wechat_merchant(
        mch_id=MCH_ID,
        appid=APPID,
        api_v2_key="a" * 32,
        api_v3_key=API_V3_KEY,
        merchant_certificate_pem=merchant_keys.cert_pem,
        key_mode="TRANSITION",
    )
    monkeypatch.setattr(platform_keys, "rng", Alternating())
    public_id = wechat_merchant.platform_public_key_id

    signers = [signer_of_answers(client, f"T{n}") for n in range(4)]

    assert signers == [public_id, new.serial_no, public_id, new.serial_no]
    # /v3/certificates itself is signed with the certificate whatever the draw, and lists the certificates.
    assert set(download(client)) == {wechat_merchant.platform_certificate_serial, new.serial_no}
    assert client.get(CERTIFICATES).headers["Wechatpay-Serial"] == new.serial_no


def test_transition_mode_draws_both_with_a_real_random(client, merchant_keys, monkeypatch):
    import random

    services.sandbox_register_wechat_merchant(
        mch_id=MCH_ID,
        appid=APPID,
        api_v2_key="a" * 32,
        api_v3_key=API_V3_KEY,
        merchant_certificate_pem=merchant_keys.cert_pem,
        key_mode="TRANSITION",
    )
    monkeypatch.setattr(platform_keys, "rng", random.Random(7))

    serials = {signer_of_answers(client, f"D{n}") for n in range(12)}

    assert len(serials) == 2


def test_registration_keeps_its_certificates_and_mode_argument(wechat_merchant, merchant_keys):
    services.sandbox_rotate_platform_certificate(MCH_ID)
    again = services.sandbox_register_wechat_merchant(
        mch_id=MCH_ID,
        appid=APPID,
        api_v2_key="a" * 32,
        api_v3_key=API_V3_KEY,
        merchant_certificate_pem=merchant_keys.cert_pem,
        key_mode="PUBLIC_KEY",
    )
    assert again.platform_certificates.count() == 2
    assert (again.key_mode, again.uses_public_key) == ("PUBLIC_KEY", True)
    assert again.platform_certificate_serial == wechat_merchant.platform_certificate_serial


def test_management_command_rotates(wechat_merchant, sandbox_clock, capsys):
    call_command("sandbox_rotate_platform_certificate", "--mch-id", MCH_ID, "--switch-in", "30")

    listed = services.sandbox_platform_certificates(MCH_ID)
    assert len(listed) == 2
    (new,) = [c for c in listed if c.serial_no != wechat_merchant.platform_certificate_serial]
    assert new.signs_from == sandbox_clock.now() + timedelta(seconds=30)
    assert new.serial_no in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("sandbox_rotate_platform_certificate", "--mch-id", "1234")


def test_connect_hands_the_product_every_listed_certificate_and_the_mode(make_shop):
    from sandbox.connect import sandbox_connect_merchant

    shop = make_shop()
    mch_id = shop.merchant.mch_id
    new = services.sandbox_rotate_platform_certificate(mch_id)

    sandbox_connect_merchant(shop.merchant, key_mode="TRANSITION")

    registered = SandboxWechatMerchant.objects.get(mch_id=mch_id)
    assert registered.key_mode == "TRANSITION"
    keys = channels.platform_keys(signing_credentials_for(shop.merchant))
    assert set(keys) == {registered.platform_certificate_serial, new.serial_no, registered.platform_public_key_id}

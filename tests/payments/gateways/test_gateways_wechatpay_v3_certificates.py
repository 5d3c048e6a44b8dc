"""GET /v3/certificates: every platform certificate decrypted and checked, the answer's signature verified with a key
we trust or, on the first download, with the certificate of that serial from the answer itself."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from payments.gateways import wechatpay_v3 as v3
from payments.gateways.base import Outcome
from payments.gateways.wechatpay_v3_certificates import download_certificates
from tests.payments.gateways.gateway_fakes import KeyPair, make_key_pair, mock_client, raising

NOW = 1_700_000_000
CHINA = timezone(timedelta(hours=8))
API_V3_KEY = "0123456789abcdefghijklmnopqrstuv"
PUB_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"
MCHID = "1230000109"


def clock() -> float:
    return float(NOW)


def rfc3339(offset: timedelta) -> str:
    """A moment relative to NOW in China time, as WeChat writes it (2018-06-08T10:34:56+08:00)."""
    moment = datetime.fromtimestamp(NOW, UTC) + offset
    return moment.astimezone(CHINA).isoformat(timespec="seconds")


def entry(
    pair: KeyPair,
    *,
    serial: str | None = None,
    effective: timedelta = timedelta(days=-100),
    expire: timedelta = timedelta(days=300),
    key: str = API_V3_KEY,
) -> dict:
    """One element of the answer's `data`, the certificate encrypted like WeChat does (associated_data
    "certificate")."""
    return {
        "serial_no": serial or pair.serial,
        "effective_time": rfc3339(effective),
        "expire_time": rfc3339(expire),
        "encrypt_certificate": v3.encrypt_notification_resource(
            pair.cert_pem, api_v3_key=key, associated_data="certificate"
        ),
    }


class FakeWechat:
    """Checks our Authorization like WeChat does and answers `body`, signed with `signer`'s key under `serial`."""

    def __init__(self, merchant: KeyPair, body: dict, *, signer: KeyPair | None, serial: str = "", status=200):
        self.merchant, self.body, self.signer, self.status = merchant, body, signer, status
        self.serial = serial or (signer.serial if signer else "")
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        v3.verify_request_authorization(
            request.headers["Authorization"],
            method=request.method,
            path_with_query=path,
            body=request.content,
            merchant_keys={self.merchant.serial: self.merchant.cert_pem},
            clock=clock,
        )
        self.paths.append(f"{request.method} {path}")
        content = json.dumps(self.body).encode()
        headers = {}
        if self.signer is not None:
            headers = v3.sign_response(content, serial=self.serial, private_key=self.signer.private_pem, timestamp=NOW)
        return httpx.Response(self.status, content=content, headers=headers)


@pytest.fixture(scope="module")
def rotated() -> KeyPair:
    """The platform certificate WeChat publishes next to the current one before it starts signing with it."""
    return make_key_pair("wechatpay-platform-next")


@pytest.fixture(scope="module")
def stranger() -> KeyPair:
    return make_key_pair("not-wechatpay")


def config(merchant: KeyPair, platform_keys: dict | None = None) -> v3.WechatPayV3Config:
    return v3.WechatPayV3Config(
        mchid=MCHID,
        appid="wxd678efh567hg6787",
        merchant_private_key_pem=merchant.private_pem,
        merchant_serial_no=merchant.serial,
        api_v3_key=API_V3_KEY,
        platform_keys=platform_keys or {},
        base_url="https://api.test",
    )


def download(fake: FakeWechat, platform_keys: dict | None = None):
    return download_certificates(config(fake.merchant, platform_keys), client=mock_client(fake), clock=clock)


# --- trusted answers -------------------------------------------------------------------------------------------------


def test_the_first_download_trusts_the_certificate_that_decrypted_and_signed(merchant_keys, platform_keys):
    fake = FakeWechat(merchant_keys, {"data": [entry(platform_keys)]}, signer=platform_keys)

    result = download(fake)

    assert fake.paths == ["GET /v3/certificates"]
    assert result.outcome is Outcome.SUCCESS and result.signed_by == platform_keys.serial
    [certificate] = result.certificates
    assert certificate.serial == platform_keys.serial
    assert certificate.pem.strip() == platform_keys.cert_pem.strip()
    assert certificate.effective_time == datetime.fromtimestamp(NOW, UTC) - timedelta(days=100)
    # The earlier of WeChat's expire_time and the certificate's own notAfter (the test certificate's is sooner).
    assert certificate.expire_time <= datetime.fromtimestamp(NOW, UTC) + timedelta(days=300)


def test_during_rotation_both_certificates_come_back_newest_first(merchant_keys, platform_keys, rotated):
    body = {"data": [entry(platform_keys, expire=timedelta(days=5)), entry(rotated, expire=timedelta(days=400))]}
    fake = FakeWechat(merchant_keys, body, signer=platform_keys)

    result = download(fake, {platform_keys.serial: platform_keys.cert_pem})

    assert result.outcome is Outcome.SUCCESS
    assert [c.serial for c in result.certificates] == [rotated.serial, platform_keys.serial]
    assert result.certificates[1].expire_time == datetime.fromtimestamp(NOW, UTC) + timedelta(days=5)


def test_an_answer_signed_with_the_new_certificate_verifies_with_it_from_the_answer(
    merchant_keys, platform_keys, rotated
):
    # WeChat switched signing to a certificate we have not stored yet: it is in the answer, and it decrypted.
    body = {"data": [entry(platform_keys), entry(rotated)]}
    fake = FakeWechat(merchant_keys, body, signer=rotated)

    result = download(fake, {platform_keys.serial: platform_keys.cert_pem})

    assert result.outcome is Outcome.SUCCESS and result.signed_by == rotated.serial


def test_in_the_transition_an_answer_signed_with_the_public_key_verifies(
    merchant_keys, platform_keys, platform_pubkey_keys
):
    fake = FakeWechat(merchant_keys, {"data": [entry(platform_keys)]}, signer=platform_pubkey_keys, serial=PUB_KEY_ID)

    result = download(fake, {platform_keys.serial: platform_keys.cert_pem, PUB_KEY_ID: platform_pubkey_keys.public_pem})

    assert result.outcome is Outcome.SUCCESS and result.signed_by == PUB_KEY_ID


def test_expired_entries_are_left_out(merchant_keys, platform_keys, rotated):
    body = {"data": [entry(platform_keys, expire=timedelta(seconds=-1)), entry(rotated)]}
    fake = FakeWechat(merchant_keys, body, signer=rotated)

    result = download(fake)

    assert result.outcome is Outcome.SUCCESS
    assert [c.serial for c in result.certificates] == [rotated.serial]
    assert result.expired == (platform_keys.serial,)


# --- refused answers: nothing trusted --------------------------------------------------------------------------------


def test_a_signer_neither_stored_nor_in_the_answer_is_refused(merchant_keys, platform_keys, stranger):
    fake = FakeWechat(merchant_keys, {"data": [entry(platform_keys)]}, signer=stranger)

    result = download(fake)

    assert (result.outcome, result.code, result.certificates) == (Outcome.TRANSIENT, "BAD_SIGNATURE", ())


def test_a_signature_by_another_key_under_a_listed_serial_is_refused(merchant_keys, platform_keys, stranger):
    fake = FakeWechat(merchant_keys, {"data": [entry(platform_keys)]}, signer=stranger, serial=platform_keys.serial)

    result = download(fake)

    assert (result.outcome, result.code, result.certificates) == (Outcome.TRANSIENT, "BAD_SIGNATURE", ())


def test_a_stored_serial_is_checked_with_the_stored_key_not_the_answers(merchant_keys, platform_keys, stranger):
    # Someone in between cannot swap the key behind a serial we already trust, even with a decrypting entry.
    fake = FakeWechat(merchant_keys, {"data": [entry(stranger, serial=stranger.serial)]}, signer=stranger)

    result = download(fake, {stranger.serial: platform_keys.cert_pem})

    assert (result.outcome, result.code, result.certificates) == (Outcome.TRANSIENT, "BAD_SIGNATURE", ())


def test_a_tampered_ciphertext_is_refused(merchant_keys, platform_keys):
    tampered = entry(platform_keys)
    raw = bytearray(base64.b64decode(tampered["encrypt_certificate"]["ciphertext"]))
    raw[10] ^= 0x01
    tampered["encrypt_certificate"]["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    fake = FakeWechat(merchant_keys, {"data": [tampered]}, signer=platform_keys)

    result = download(fake)

    assert (result.outcome, result.code, result.certificates) == (Outcome.TRANSIENT, "DECRYPT_FAILED", ())


def test_an_entry_encrypted_with_another_key_is_refused_even_next_to_good_ones(merchant_keys, platform_keys, rotated):
    body = {"data": [entry(platform_keys), entry(rotated, key="another-key-of-exactly-32-bytes!")]}
    fake = FakeWechat(merchant_keys, body, signer=platform_keys)

    result = download(fake, {platform_keys.serial: platform_keys.cert_pem})

    assert (result.outcome, result.code, result.certificates) == (Outcome.TRANSIENT, "DECRYPT_FAILED", ())


def test_a_certificate_under_another_serial_is_refused(merchant_keys, platform_keys, rotated):
    fake = FakeWechat(merchant_keys, {"data": [entry(platform_keys, serial=rotated.serial)]}, signer=rotated)

    result = download(fake, {rotated.serial: rotated.cert_pem})

    assert (result.outcome, result.code, result.certificates) == (Outcome.TRANSIENT, "SERIAL_MISMATCH", ())


def test_an_unreadable_time_is_refused(merchant_keys, platform_keys):
    broken = entry(platform_keys)
    broken["expire_time"] = "next year"
    fake = FakeWechat(merchant_keys, {"data": [broken]}, signer=platform_keys)

    result = download(fake)

    assert (result.outcome, result.code, result.certificates) == (Outcome.TRANSIENT, "UNPARSEABLE", ())


def test_an_answer_without_data_is_refused(merchant_keys, platform_keys):
    result = download(FakeWechat(merchant_keys, {"certificates": []}, signer=platform_keys))

    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "UNPARSEABLE")


# --- error answers and transport trouble ---------------------------------------------------------------------------


def test_a_verified_refusal_is_rejected_with_wechats_code(merchant_keys, platform_pubkey_keys):
    body = {"code": "NOT_FOUND", "message": "证书不存在"}
    fake = FakeWechat(merchant_keys, body, signer=platform_pubkey_keys, serial=PUB_KEY_ID, status=404)

    result = download(fake, {PUB_KEY_ID: platform_pubkey_keys.public_pem})

    assert (result.outcome, result.code, result.message) == (Outcome.REJECTED, "NOT_FOUND", "证书不存在")


def test_a_refusal_nothing_stored_can_verify_decides_nothing(merchant_keys, platform_pubkey_keys):
    body = {"code": "NOT_FOUND", "message": "证书不存在"}
    fake = FakeWechat(merchant_keys, body, signer=platform_pubkey_keys, serial=PUB_KEY_ID, status=404)

    result = download(fake)

    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "NOT_FOUND")


def test_a_badly_signed_refusal_is_not_wechats_word(merchant_keys, platform_keys, stranger):
    fake = FakeWechat(merchant_keys, {"code": "NO_AUTH"}, signer=stranger, serial=platform_keys.serial, status=403)

    result = download(fake, {platform_keys.serial: platform_keys.cert_pem})

    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "BAD_SIGNATURE")


def test_an_unsigned_server_error_is_transient(merchant_keys):
    result = download(FakeWechat(merchant_keys, {"code": "SYSTEM_ERROR"}, signer=None, status=500))

    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "HTTP_500")


def test_a_timeout_is_transient(merchant_keys):
    result = download_certificates(config(merchant_keys), client=mock_client(raising(httpx.ReadTimeout)), clock=clock)

    assert (result.outcome, result.code, result.certificates) == (Outcome.TRANSIENT, "TIMEOUT", ())

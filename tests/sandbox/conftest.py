"""Fixtures for the sandbox tests: registered merchants, gateway configs pointing at the sandbox, a fake clock.

RSA keys are made once per session: the sandbox's own key generation is swapped for a session cache (one key per
common name), so registering a merchant in every test costs nothing.

Timing: `sandbox_clock` replaces sandbox.clock.now/sleep. `sleep` advances the fake clock instead of
waiting, and `SandboxTransport` turns a sandbox sleep at least as long as the request's read timeout into
httpx.ReadTimeout — what the client would see from a live server that answers too late, while the sandbox still
commits the charge first.
"""

from __future__ import annotations

import functools

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from payments.gateways import umpay, wechatpay_v2, wechatpay_v3
from payments.gateways.keys import load_private_key
from sandbox import clock as sandbox_clock_module
from sandbox import services
from tests.payments.gateways.gateway_fakes import FIXTURES, KeyPair, make_key_pair
from tests.sandbox_time import FakeClock, SandboxTransport

MCH_ID = "1900000109"
APPID = "wxsandbox00000001"
API_V2_KEY = "abcdefghijklmnopqrstuvwxyz012345"
API_V3_KEY = "0123456789abcdefghijklmnopqrstuv"
PROVIDER_MCH_ID = "1900000200"
PROVIDER_APPID = "wxsandboxprovider"
PROVIDER_V2_KEY = "PROVIDERkey0123456789abcdefghijk"
SUB_MCH_ID = "1900000201"
ACQ_SP_ID = "Y471790403"
ACQ_MER_ID = "41509208"
WX_BASE = "http://testserver/sandbox/wechatpay"
WX_FACE_BASE = "http://testserver/sandbox/wechatpay-face"
UMPAY_BASE = "http://testserver/sandbox/umpay"
AUTH_CODE = "134567890123456789"


@functools.cache
def _cached_key_and_certificate(common_name: str) -> tuple[str, str]:
    pair = make_key_pair(common_name)
    return pair.private_pem, pair.cert_pem


@pytest.fixture(autouse=True)
def _session_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "generate_key_and_certificate", _cached_key_and_certificate)


@pytest.fixture(scope="session")
def merchant_keys() -> KeyPair:
    return make_key_pair("sandbox-test-merchant")


@pytest.fixture(scope="session")
def other_keys() -> KeyPair:
    return make_key_pair("sandbox-test-impostor")


@pytest.fixture
def sandbox_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(sandbox_clock_module, "now", fake.now)
    monkeypatch.setattr(sandbox_clock_module, "sleep", fake.sleep)
    return fake


@pytest.fixture
def transport(wsgi_transport: httpx.WSGITransport, sandbox_clock: FakeClock) -> SandboxTransport:
    return SandboxTransport(wsgi_transport, sandbox_clock)


@pytest.fixture
def http_client(transport: SandboxTransport):
    with httpx.Client(transport=transport) as c:
        yield c


@pytest.fixture
def wechat_merchant(db, merchant_keys: KeyPair):
    return services.sandbox_register_wechat_merchant(
        mch_id=MCH_ID,
        appid=APPID,
        api_v2_key=API_V2_KEY,
        api_v3_key=API_V3_KEY,
        merchant_certificate_pem=merchant_keys.cert_pem,
    )


@pytest.fixture
def wechat_provider(db, merchant_keys: KeyPair):
    provider = services.sandbox_register_wechat_merchant(
        mch_id=PROVIDER_MCH_ID,
        appid=PROVIDER_APPID,
        api_v2_key=PROVIDER_V2_KEY,
        api_v3_key=API_V3_KEY,
        merchant_certificate_pem=merchant_keys.cert_pem,
    )
    services.sandbox_register_sub_merchant(provider_mch_id=PROVIDER_MCH_ID, sub_mch_id=SUB_MCH_ID)
    return provider


def v2_config(**overrides) -> wechatpay_v2.WechatPayV2Config:
    values = {
        "appid": APPID,
        "mch_id": MCH_ID,
        "api_key": API_V2_KEY,
        "base_url": WX_BASE,
        "face_base_url": WX_FACE_BASE,
    }
    values.update(overrides)
    return wechatpay_v2.WechatPayV2Config(**values)


def provider_v2_config(**overrides) -> wechatpay_v2.WechatPayV2Config:
    return v2_config(
        **{"appid": PROVIDER_APPID, "mch_id": PROVIDER_MCH_ID, "api_key": PROVIDER_V2_KEY, "sub_mch_id": SUB_MCH_ID}
        | overrides
    )


def v3_config(merchant, keys: KeyPair, *, public_key_mode: bool = False, **overrides) -> wechatpay_v3.WechatPayV3Config:
    platform = (
        {merchant.platform_public_key_id: merchant.platform_public_key_pem}
        if public_key_mode
        else {merchant.platform_certificate_serial: merchant.platform_certificate_pem}
    )
    values = {
        "mchid": merchant.mch_id,
        "appid": merchant.appid,
        "merchant_private_key_pem": keys.private_pem,
        "merchant_serial_no": keys.serial,
        "api_v3_key": API_V3_KEY,
        "platform_keys": platform,
        "base_url": WX_BASE,
    }
    values.update(overrides)
    return wechatpay_v3.WechatPayV3Config(**values)


@pytest.fixture(scope="session")
def umf_merchant_key_der() -> bytes:
    """UMF's published test merchant key (testSpay.key.p8): the provider's side signs with it."""
    return (FIXTURES / "testSpay.key.p8").read_bytes()


def public_pem_of(private_key: str | bytes) -> str:
    return (
        load_private_key(private_key)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def umpay_provider(db, umf_merchant_key_der: bytes):
    return services.sandbox_register_umpay_provider(
        acq_sp_id=ACQ_SP_ID, merchant_public_pem_or_cert=public_pem_of(umf_merchant_key_der), acq_mer_ids=[ACQ_MER_ID]
    )


@pytest.fixture
def umpay_config(umpay_provider, umf_merchant_key_der: bytes) -> umpay.UmpayConfig:
    return umpay.UmpayConfig(
        acq_sp_id=ACQ_SP_ID,
        acq_mer_id=ACQ_MER_ID,
        private_key=umf_merchant_key_der,
        umpay_certificate=umpay_provider.umpay_certificate_pem,
        base_url=UMPAY_BASE,
    )

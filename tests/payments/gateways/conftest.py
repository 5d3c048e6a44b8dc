"""Session-wide keys for the pure gateway tests (no Django, no network)."""

from __future__ import annotations

import pytest

from payments.gateways import http
from tests.payments.gateways.gateway_fakes import FIXTURES, KeyPair, make_key_pair


@pytest.fixture(autouse=True)
def _no_django_hooks(monkeypatch):
    """The gateways alone: the hook the Django side registers (handing the database connection back before each
    call) would touch a connection an earlier database test left open, which these tests may not use."""
    monkeypatch.setattr(http, "before_send", [])


@pytest.fixture(scope="session")
def merchant_keys() -> KeyPair:
    """The merchant's API certificate and key (signs v3 requests, presents itself for v2 secapi)."""
    return make_key_pair("merchant-test")


@pytest.fixture(scope="session")
def platform_keys() -> KeyPair:
    """A WeChat Pay platform certificate and key (signs v3 responses and notifications)."""
    return make_key_pair("wechatpay-platform-test")


@pytest.fixture(scope="session")
def platform_pubkey_keys() -> KeyPair:
    """A WeChat Pay platform public key, named by a PUB_KEY_ID_… instead of a certificate serial."""
    return make_key_pair("wechatpay-pubkey-test")


@pytest.fixture(scope="session")
def umf_private_key_der() -> bytes:
    return (FIXTURES / "testSpay.key.p8").read_bytes()


@pytest.fixture(scope="session")
def umf_certificate_der() -> bytes:
    return (FIXTURES / "testUmpay.cert.crt").read_bytes()

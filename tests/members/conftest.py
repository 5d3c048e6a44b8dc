import secrets

import httpx
import pytest

from payments import channels
from payments.terminal_client import TerminalClient
from portal import services as portal_services
from portal.credentials import generate_key_and_certificate
from sandbox.services import sandbox_register_wechat_merchant
from tests.factories import StoreFactory, make_device


@pytest.fixture
def terminal_for(wsgi_transport):
    """A device-signed terminal client for a new device in `store` (or a new store of a new merchant)."""
    clients = []

    def make(store=None):
        device, secret = make_device(store or StoreFactory())
        client = TerminalClient(
            "http://testserver", device_id=device.device_id, secret=secret, transport=wsgi_transport
        )
        clients.append(client)
        return client, device

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def wechat_sandbox(settings, monkeypatch, wsgi_transport):
    """Route upstream v3 calls into the built-in sandbox, in process (real signatures both ways)."""
    settings.WECHATPAY_API_BASE = "http://testserver/sandbox/wechatpay"
    client = httpx.Client(transport=wsgi_transport)
    monkeypatch.setattr(channels, "upstream_client", client)
    yield client
    client.close()


def configure_wechat_credentials(merchant):
    """Register `merchant` with the sandbox and store the keys it hands back, as onboarding would."""
    key_pem, cert_pem = generate_key_and_certificate(f"merchant {merchant.mch_id}")
    api_v2_key, api_v3_key = secrets.token_hex(16), secrets.token_hex(16)
    registered = sandbox_register_wechat_merchant(
        mch_id=merchant.mch_id,
        appid=merchant.appid,
        api_v2_key=api_v2_key,
        api_v3_key=api_v3_key,
        merchant_certificate_pem=cert_pem,
    )
    portal_services.credentials_update(
        owner=merchant,
        values={
            "wechat_api_v2_key": api_v2_key,
            "wechat_api_v3_key": api_v3_key,
            "wechat_private_key": key_pem,
            "wechat_certificate": cert_pem,
            "wechat_platform_certificates": registered.platform_certificate_pem,
        },
        actor=None,
        actor_label="test",
    )
    return registered

"""A shop wired to the sandbox: merchant + credentials + device on the product side, the same merchant registered
with the sandbox, every upstream call going in-process through `SandboxTransport`, and one fake clock shared by the
product's services and the sandbox, so "USERPAYING for 20 s" runs instantly and in order.

`shop.run_worker(seconds)` plays the worker and the beat sweeper: it advances the clock second by second and runs
everything due, exactly as `payments.tasks.sweep` would find it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import httpx
import pytest

from payments import channels, services
from payments.models import Payment
from payments.terminal_client import TerminalClient
from portal import credentials as cred
from portal.models import Merchant
from portal.services import MERCHANT_FIELDS, credentials_update, merchant_update
from sandbox import services as sandbox_services
from sandbox.connect import sandbox_connect_merchant
from tests.factories import MerchantFactory, ServiceProviderFactory, StoreFactory, make_device
from tests.sandbox_time import FakeClock, SandboxTransport


@functools.cache
def cached_key_and_certificate(common_name: str) -> tuple[str, str]:
    return cred.generate_key_and_certificate(common_name)


@dataclass
class Shop:
    merchant: Merchant
    terminal: TerminalClient
    clock: FakeClock
    transport: SandboxTransport
    device: object = None
    secret: str = ""  # the device's, for requests signed outside `terminal`
    log: list[str] = field(default_factory=list)

    def drain(self) -> None:
        """Run everything due now, as often as it becomes due (bounded)."""
        for _ in range(50):
            payment_ids, refund_ids = services.due_work(now=self.clock.now())
            if not payment_ids and not refund_ids:
                return
            for payment_id in payment_ids:
                services.payment_resolve(payment_id=payment_id, now=self.clock.now())
            for refund_id in refund_ids:
                services.refund_process(refund_id=refund_id, now=self.clock.now())
        raise AssertionError("work kept becoming due without time passing")

    def run_worker(self, seconds: float) -> None:
        for _ in range(int(seconds)):
            self.clock.advance(1)
            self.drain()

    def upstream_calls(self) -> list[str]:
        """Paths of upstream calls, in order, without the sandbox prefix (e.g. "pay/micropay")."""
        calls = []
        for request in self.transport.requests:
            path = request.url.path
            for prefix in ("/sandbox/wechatpay-face/", "/sandbox/wechatpay/", "/sandbox/umpay/"):
                if path.startswith(prefix):
                    calls.append(path[len(prefix) :])
        return calls

    def pay(self, amount: int, **fields) -> dict:
        body = {"total_fee": amount, "body": "测试商品", "method": "CODE", "auth_code": "134567890123456789", **fields}
        response = self.terminal.post("payments", body)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def payment(self, out_trade_no: str) -> Payment:
        return Payment.objects.get(merchant=self.merchant, out_trade_no=out_trade_no)


def _make_merchant(channel: str) -> Merchant:
    key_pem, cert_pem = cached_key_and_certificate(f"merchant-{channel}")
    if channel == Merchant.Channel.UMPAY:
        provider = ServiceProviderFactory(umpay_acq_sp_id="Y471790403")
        merchant = MerchantFactory(provider=provider, channel=channel, umpay_acq_mer_id="41509208", appid="", mch_id="")
        umf_key, _ = cached_key_and_certificate("umf-provider")
        credentials_update(owner=provider, values={"umpay_private_key": umf_key}, actor=None, actor_label="test")
        return merchant
    values = {
        "wechat_api_v2_key": "k" * 16 + "0123456789abcdef",
        "wechat_api_v3_key": "v3key-0123456789abcdefghijklmnop",
        "wechat_private_key": key_pem,
        "wechat_certificate": cert_pem,
    }
    if channel == Merchant.Channel.WECHAT_PROVIDER:
        provider = ServiceProviderFactory(wechat_mch_id="1900000200", wechat_appid="wxprovider0000001")
        merchant = MerchantFactory(provider=provider, channel=channel, sub_mch_id="1900000201", appid="", mch_id="")
        credentials_update(owner=provider, values=values, actor=None, actor_label="test")
        return merchant
    merchant = MerchantFactory(channel=channel, mch_id="1900000109", appid="wxd930ea5d5a258f4f")
    credentials_update(owner=merchant, values=values, actor=None, actor_label="test")
    return merchant


def _merchant_values(merchant: Merchant) -> dict[str, str]:
    return {name: getattr(merchant, name) for name in MERCHANT_FIELDS}


@pytest.fixture
def make_shop(db, wsgi_transport, monkeypatch, settings):
    monkeypatch.setattr(sandbox_services, "generate_key_and_certificate", cached_key_and_certificate)
    clock = FakeClock()
    from sandbox import clock as sandbox_clock

    monkeypatch.setattr(sandbox_clock, "now", clock.now)
    monkeypatch.setattr(sandbox_clock, "sleep", clock.sleep)
    monkeypatch.setattr(services, "_now", clock.now)
    transport = SandboxTransport(wsgi_transport, clock)
    monkeypatch.setattr(channels, "upstream_client", httpx.Client(transport=transport))
    # The terminal API returns at once: waiting for the worker is what run_worker does here.
    settings.PAYMENT_WAIT_SECONDS = 0
    settings.WECHATPAY_API_BASE = "http://testserver/sandbox/wechatpay"
    settings.WECHATPAY_FACE_API_BASE = "http://testserver/sandbox/wechatpay-face"
    settings.UMPAY_API_BASE = "http://testserver/sandbox/umpay"
    settings.PUBLIC_BASE_URL = "http://testserver"
    clients = []

    def make(channel: str = Merchant.Channel.WECHAT_DIRECT, wechat_api: str = Merchant.WechatApi.V2) -> Shop:
        merchant = _make_merchant(channel)
        sandbox_connect_merchant(merchant)
        if wechat_api != merchant.wechat_api:
            merchant_update(
                merchant=merchant, values={**_merchant_values(merchant), "wechat_api": wechat_api}, actor=None
            )
            merchant.refresh_from_db()
        device, secret = make_device(StoreFactory(merchant=merchant))
        terminal = TerminalClient(
            "http://testserver",
            device_id=device.device_id,
            secret=secret,
            transport=wsgi_transport,
            clock=clock.timestamp,
        )
        clients.append(terminal)
        return Shop(
            merchant=merchant, terminal=terminal, clock=clock, transport=transport, device=device, secret=secret
        )

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def shop(make_shop) -> Shop:
    return make_shop(Merchant.Channel.WECHAT_DIRECT)

"""A shop with PayScore wired to the sandbox (built on tests/shop.py's `make_shop`): the product's
PayScore services share the fake clock, upstream calls go in-process to the sandbox (and can be made to lose their
answer), and the sandbox's notifications are delivered over HTTP into /notify/wechatpay/payscore/."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from payments import channels
from payscore import services
from payscore.models import ServiceOrder
from portal.models import Merchant
from sandbox import services as sandbox
from tests.shop import Shop

SERVICE_ID = "500001"


class LossyTransport(httpx.BaseTransport):
    """Forwards to the sandbox; `lose_answers` answers are dropped after the sandbox acted (a read timeout), and
    `drop_requests` requests never reach it (a connection error)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.lose_answers = 0
        self.drop_requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.drop_requests:
            self.drop_requests -= 1
            raise httpx.ConnectError("connection refused", request=request)
        response = self.inner.handle_request(request)
        if self.lose_answers:
            self.lose_answers -= 1
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


class CapturingTransport(httpx.BaseTransport):
    """The notification receiver's side: records every delivery; `refuse` answers 503 without passing it on (so a
    test can replay the captured requests in any order); `tamper` corrupts the signature before passing it on."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.captured: list[tuple[str, dict[str, str], bytes]] = []
        self.refuse = False
        self.tamper = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.captured.append((str(request.url), dict(request.headers), body))
        if self.refuse:
            return httpx.Response(503)
        if self.tamper:
            signature = request.headers["Wechatpay-Signature"]
            request.headers["Wechatpay-Signature"] = ("A" if signature[0] != "A" else "B") + signature[1:]
        return self.inner.handle_request(request)


@dataclass
class PayscoreShop:
    shop: Shop
    lossy: LossyTransport
    receiver: CapturingTransport
    http: httpx.Client
    statuses: list[int] = field(default_factory=list)

    @property
    def merchant(self) -> Merchant:
        return self.shop.merchant

    @property
    def terminal(self):
        return self.shop.terminal

    @property
    def clock(self):
        return self.shop.clock

    def create_body(self, out_order_no: str = "PS0001", **overrides) -> dict:
        body = {
            "out_order_no": out_order_no,
            "service_introduction": "充电宝租借",
            "risk_fund": {"name": "DEPOSIT", "amount": 9900, "description": "充电宝押金"},
            "time_range": {"start_time": "OnAccept"},
            "post_payments": [{"name": "租借费", "amount": 300, "description": "3元/小时", "count": 1}],
            "location": {"start_location": "一号门店"},
            "attach": "device=1",
            "need_user_confirm": True,
        }
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not None}

    def create(self, out_order_no: str = "PS0001", **overrides) -> httpx.Response:
        return self.terminal.post("payscore/orders", self.create_body(out_order_no, **overrides))

    def order(self, out_order_no: str = "PS0001") -> ServiceOrder:
        return ServiceOrder.objects.get(merchant=self.merchant, out_order_no=out_order_no)

    def deliver(self) -> int:
        """The sandbox sends every notification now due, over HTTP into our notify endpoint."""
        return sandbox.sandbox_deliver_due_notifications(client=self.http, now=self.clock.now())

    def replay(self, index: int) -> httpx.Response:
        url, headers, body = self.receiver.captured[index]
        with httpx.Client(transport=self.receiver.inner) as client:
            return client.post(url, content=body, headers=headers)

    def upstream_calls(self) -> list[str]:
        return self.shop.upstream_calls()

    def complete_body(self, amount: int = 300, **overrides) -> dict:
        body = {"post_payments": [{"name": "租借费", "amount": amount, "count": 1}], "total_amount": amount}
        body.update(overrides)
        return body


@pytest.fixture
def ps(make_shop, wsgi_transport, monkeypatch) -> PayscoreShop:
    shop = make_shop(Merchant.Channel.WECHAT_DIRECT)
    shop.merchant.payscore_service_id = SERVICE_ID
    shop.merchant.save(update_fields=["payscore_service_id"])
    monkeypatch.setattr(services, "_now", shop.clock.now)
    lossy = LossyTransport(shop.transport)
    monkeypatch.setattr(channels, "upstream_client", httpx.Client(transport=lossy))
    receiver = CapturingTransport(wsgi_transport)
    http = httpx.Client(transport=receiver)
    yield PayscoreShop(shop=shop, lossy=lossy, receiver=receiver, http=http)
    http.close()

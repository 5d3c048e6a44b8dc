"""UMF answers in the payment lifecycle, against the sandbox: an answer about another order never settles this one,
only codes that certainly mean "refused" fail a payment, and an order UMF never had ends FAILED, not ATTENTION."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from payments import channels, services
from payments.gateways import umpay
from payments.models import PaymentEvent
from portal.models import Merchant

AUTH_CODE = "134567890123456789"


class Rewriting(httpx.BaseTransport):
    """The shop's sandbox transport, with the answers of one UMF path replaced by `rewrite(request, inner)`."""

    def __init__(self, inner: httpx.BaseTransport, path: str, rewrite: Callable) -> None:
        self.inner, self.path, self.rewrite = inner, path, rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(self.path):
            return self.rewrite(request, self.inner)
        return self.inner.handle_request(request)


def _umf_signed(fields: dict) -> httpx.Response:
    """An answer signed with the sandbox's UMF key: what UMF itself would send."""
    from sandbox.services import _umpay_identity

    signed = umpay.sign_response(fields, _umpay_identity().private_key_pem.reveal())
    return httpx.Response(200, content=json.dumps(signed, ensure_ascii=False).encode())


def _route(monkeypatch, shop, path: str, rewrite: Callable) -> None:
    monkeypatch.setattr(channels, "upstream_client", httpx.Client(transport=Rewriting(shop.transport, path, rewrite)))


def _create(shop, amount: int, out_trade_no: str):
    data = services.PaymentInput(
        total_fee=amount, body="测试商品", auth_code=AUTH_CODE, method="CODE", out_trade_no=out_trade_no
    )
    payment, created = services.payment_create(device=shop.device, data=data)
    assert created
    return payment


@pytest.fixture
def umf_shop(make_shop):
    return make_shop(Merchant.Channel.UMPAY)


def test_a_genuine_paid_answer_for_another_amount_never_settles_the_order(umf_shop):
    """UMF has a paid 1-fen order under this number (a genuine, signed answer); our order is 2 fen. The query's
    answer is not about our order: recorded with its evidence, never SUCCESS."""
    shop = umf_shop
    one_fen = umpay.micropay(
        channels._umpay_config(shop.merchant),
        umpay.MicropayRequest(order_no="REPLAY1", txn_amt=1, auth_code=AUTH_CODE, goods_id="g", goods_info="x"),
        client=channels.upstream_client,
    )
    assert one_fen.is_success  # UMF really has REPLAY1 paid, for 1 fen
    payment = _create(shop, 2, "REPLAY1")  # its micropay never answered: the sweeper queries

    shop.run_worker(20)

    payment.refresh_from_db()
    assert payment.status != "SUCCESS" and payment.transaction_id == ""
    query = PaymentEvent.objects.filter(payment=payment, action="orderquery").first()
    assert (query.outcome, query.code) == ("TRANSIENT", "MISMATCH")
    assert "txnAmt: 1 (expected 2)" in query.message
    assert (query.response["origRespCode"], query.response["txnAmt"]) == ("00", "1")  # the evidence
    shop.run_worker(400)
    payment.refresh_from_db()
    assert payment.status == "ATTENTION"  # the cancel's answers name 1 fen too: a person looks


@pytest.mark.parametrize("code", ["99", "06"])
def test_micropay_system_error_is_unknown_and_the_query_finds_the_charge(umf_shop, monkeypatch, code):
    """UMF answers 99 (系统异常) / 06 (系统繁忙) though the charge went through: the payment is queried, not failed."""
    shop = umf_shop

    def charged_then_error(request, inner):
        inner.handle_request(request)  # the sandbox charges the user
        sent = json.loads(request.content)
        return _umf_signed({"respCode": code, "respMsg": "系统异常", "orderNo": sent["orderNo"]})

    _route(monkeypatch, shop, "pay/micropay", charged_then_error)
    order = shop.pay(1000)
    assert order["status"] == "PAYING"
    payment = shop.payment(order["out_trade_no"])
    assert (payment.err_code, payment.next_check_at is not None) == (code, True)

    shop.run_worker(10)

    payment.refresh_from_db()
    assert payment.status == "SUCCESS"


def test_micropay_certain_refusal_fails_at_once(umf_shop):
    order = umf_shop.pay(203)  # the sandbox declines with 15 (账户余额不足)
    payment = umf_shop.payment(order["out_trade_no"])
    assert (payment.status, payment.err_code) == ("FAILED", "15")


def test_an_order_umf_never_had_ends_failed_after_the_window(umf_shop, monkeypatch):
    """The micropay is lost before reaching UMF: every query answers 17 (交易不存在), and so does the cancel sent
    after the query window. Nothing reached UMF, so nobody was charged: FAILED, not ATTENTION."""
    shop = umf_shop

    def lost(request, inner):
        raise httpx.ReadTimeout("lost on the way", request=request)

    _route(monkeypatch, shop, "pay/micropay", lost)
    order = shop.pay(1000)
    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "PAYING"

    shop.run_worker(25)
    payment.refresh_from_db()
    assert payment.status == "PAYING"  # inside the window a 17 only means "not recorded yet"
    queries = PaymentEvent.objects.filter(payment=payment, action="orderquery")
    assert queries.exists() and {(e.outcome, e.code) for e in queries} == {("REJECTED", "17")}

    shop.run_worker(30)

    payment.refresh_from_db()
    assert payment.status == "FAILED"
    cancel = PaymentEvent.objects.get(payment=payment, action="reverse")
    assert (cancel.outcome, cancel.code) == ("REJECTED", "17")
    assert shop.upstream_calls().count("pay/cancelOrder") == 1

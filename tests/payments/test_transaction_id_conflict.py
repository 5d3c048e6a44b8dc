"""A channel transaction id that already belongs to another order: decided once, under the lock, as ATTENTION with
an event naming the other order — not an IntegrityError on every retry. Runs on SQLite and PostgreSQL (where the
refused write would abort the whole transaction without its savepoint)."""

from __future__ import annotations

import pytest

from payments.models import Payment, PaymentEvent
from sandbox import identity

TAKEN = "4200009999202612040000000001"


@pytest.fixture
def taken(shop, monkeypatch) -> Payment:
    """Another order of the merchant already holds TAKEN; the sandbox's next charge answers with TAKEN too."""
    other = Payment.objects.create(
        merchant=shop.merchant, store=shop.device.store, device=shop.device, channel=shop.merchant.channel,
        method="CODE", wallet="WECHAT", out_trade_no="EARLIER-ORDER", total_fee=500, body="b",
        order_time="20261204101010", status="SUCCESS", transaction_id=TAKEN,
    )  # fmt: skip
    monkeypatch.setattr(identity, "wechat_transaction_id", lambda: TAKEN)
    return other


def _assert_conflict(payment: Payment, other: Payment) -> None:
    payment.refresh_from_db()
    assert (payment.status, payment.transaction_id, payment.next_check_at) == ("ATTENTION", "", None)
    assert payment.err_code == "TRANSACTION_ID_CONFLICT"
    event = PaymentEvent.objects.get(payment=payment, action="transaction_id.conflict")
    assert "EARLIER-ORDER" in event.message
    assert event.response["transaction_id"] == TAKEN
    assert event.response["other_payment"]["pk"] == other.pk
    other.refresh_from_db()
    assert (other.status, other.transaction_id) == ("SUCCESS", TAKEN)  # untouched


def test_a_query_answer_with_a_taken_transaction_id_goes_to_attention(shop, taken):
    order = shop.pay(101)  # USERPAYING, then paid: the query brings the transaction id
    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "PAYING"

    shop.run_worker(20)  # raised IntegrityError on every sweep before

    _assert_conflict(payment, taken)
    assert PaymentEvent.objects.filter(payment=payment, action="transaction_id.conflict").count() == 1
    queries = PaymentEvent.objects.filter(payment=payment, action="orderquery")
    assert queries.last().outcome == "SUCCESS"  # the answer itself is kept


def test_a_micropay_answer_with_a_taken_transaction_id_goes_to_attention(shop, taken):
    order = shop.pay(1000)  # paid at once, under TAKEN

    payment = shop.payment(order["out_trade_no"])
    _assert_conflict(payment, taken)
    assert order["status"] in ("PAYING", "ATTENTION")
    assert PaymentEvent.objects.filter(payment=payment, action="micropay").count() == 1

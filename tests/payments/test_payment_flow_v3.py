"""The money path of a merchant switched to WeChat Pay API v3, end to end against the sandbox: the same lifecycle
(query → reverse → ATTENTION) as v2, over codepay / query by out_trade_no / reverse / domestic refunds, direct and
service-provider. Each test checks the calls made went over v3 only and that the sandbox's ledger agrees on money."""

import pytest

from payments import services
from payments.channels import Answer
from payments.gateways.base import Outcome
from payments.models import Refund
from payments.services import refund_create
from portal.models import Merchant
from sandbox.services import sandbox_ledger
from tests.payments.test_payment_flow import assert_money_agrees

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[Merchant.Channel.WECHAT_DIRECT, Merchant.Channel.WECHAT_PROVIDER])
def shop(request, make_shop):
    return make_shop(request.param, wechat_api=Merchant.WechatApi.V3)


def kinds(shop) -> list[str]:
    """Each upstream call by kind: codepay, query, reverse, refund, refundquery (or the raw path if not v3)."""
    named = []
    for path in shop.upstream_calls():
        if path.endswith("/codepay"):
            named.append("codepay")
        elif path.endswith("/reverse"):
            named.append("reverse")
        elif "/out-trade-no/" in path:
            named.append("query")
        elif path == "v3/refund/domestic/refunds":
            named.append("refund")
        elif path.startswith("v3/refund/domestic/refunds/"):
            named.append("refundquery")
        else:
            named.append(path)
    return named


def test_a_payment_over_v3_succeeds_with_one_call_and_records_the_transaction(shop):
    order = shop.pay(1000)

    assert order["status"] == "SUCCESS"
    assert order["transaction_id"]
    assert kinds(shop) == ["codepay"]
    partner = shop.merchant.channel == Merchant.Channel.WECHAT_PROVIDER
    assert shop.upstream_calls()[0] == (
        "v3/pay/partner/transactions/codepay" if partner else "v3/pay/transactions/codepay"
    )
    payment = shop.payment(order["out_trade_no"])
    assert payment.openid
    event = payment.events.get(action="micropay")
    assert event.request["body"]["payer"]["auth_code"] == "1345***"  # the payment code is never stored
    assert_money_agrees(shop, order["out_trade_no"])


def test_userpaying_then_success_is_queried_not_reversed(shop):
    order = shop.pay(1101)
    assert order["status"] == "PAYING"
    assert shop.payment(order["out_trade_no"]).events.get(action="micropay").code == "USERPAYING"

    shop.run_worker(40)

    assert shop.payment(order["out_trade_no"]).status == "SUCCESS"
    assert "query" in kinds(shop) and "reverse" not in kinds(shop)
    assert_money_agrees(shop, order["out_trade_no"])


def test_never_paid_is_reversed_over_v3(shop):
    order = shop.pay(1102)

    shop.run_worker(90)

    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "REVERSED"
    assert kinds(shop)[-1] == "reverse"
    assert set(kinds(shop)) == {"codepay", "query", "reverse"}
    assert_money_agrees(shop, order["out_trade_no"])


def test_timeout_but_charged_ends_success(shop):
    order = shop.pay(1106)
    assert order["status"] == "PAYING"
    assert shop.payment(order["out_trade_no"]).events.get(action="micropay").outcome == "UNKNOWN"

    shop.run_worker(40)

    assert shop.payment(order["out_trade_no"]).status == "SUCCESS"
    assert "reverse" not in kinds(shop)
    assert_money_agrees(shop, order["out_trade_no"])


def test_system_error_but_paid_queries_at_once(shop):
    order = shop.pay(1103)
    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "PAYING"
    assert payment.events.get(action="micropay").code == "SYSTEM_ERROR"
    assert payment.next_check_at == shop.clock.now()  # no first-query delay after a system error

    shop.run_worker(10)

    assert shop.payment(order["out_trade_no"]).status == "SUCCESS"
    assert_money_agrees(shop, order["out_trade_no"])


def test_insufficient_funds_fails_at_once_without_query(shop):
    order = shop.pay(1104)

    assert (order["status"], order["err_code"]) == ("FAILED", "NOT_ENOUGH")
    shop.run_worker(40)
    assert kinds(shop) == ["codepay"]
    assert_money_agrees(shop, order["out_trade_no"])


def test_reverse_expired_goes_to_attention(shop):
    order = shop.pay(1109)

    shop.run_worker(90)

    payment = shop.payment(order["out_trade_no"])
    assert (payment.status, payment.next_check_at) == ("ATTENTION", None)
    assert "reverse" in kinds(shop)


def test_cancel_after_success_reverses_the_charge(shop):
    order = shop.pay(1000)
    shop.terminal.post(f"payments/{order['out_trade_no']}/cancel")

    shop.run_worker(20)

    assert shop.payment(order["out_trade_no"]).status == "REVERSED"
    assert kinds(shop) == ["codepay", "reverse"]
    assert_money_agrees(shop, order["out_trade_no"])


def test_partial_refunds_go_over_the_domestic_refunds_api(shop):
    order = shop.pay(10000)
    payment = shop.payment(order["out_trade_no"])
    first = refund_create(payment=payment, refund_fee=3000, reason="退一部分", user=None, actor_label="test")

    shop.run_worker(30)

    first.refresh_from_db()
    payment.refresh_from_db()
    assert first.status == Refund.Status.SUCCESS
    assert first.refund_id
    assert (payment.status, payment.refunded_fee) == ("PARTIALLY_REFUNDED", 3000)
    second = refund_create(payment=payment, refund_fee=7000, reason="退剩余", user=None, actor_label="test")
    shop.run_worker(30)
    second.refresh_from_db()
    payment.refresh_from_db()
    assert second.status == Refund.Status.SUCCESS
    assert (payment.status, payment.refunded_fee) == ("REFUNDED", 10000)
    assert kinds(shop).count("refund") == 2 and "refundquery" in kinds(shop)
    assert not [call for call in shop.upstream_calls() if not call.startswith("v3/")]
    ledger = sandbox_ledger(now=shop.clock.now())[order["out_trade_no"]]
    assert (ledger["charged"], ledger["refunded"]) == (0, 10000)


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        # The refund is not known upstream (v2 REFUNDNOTEXIST, v3 RESOURCE_NOT_EXISTS): sent again, same number.
        (Answer(outcome=Outcome.REJECTED, code="REFUNDNOTEXIST", order_missing=True), Refund.Status.PENDING),
        (Answer(outcome=Outcome.REJECTED, code="RESOURCE_NOT_EXISTS", order_missing=True), Refund.Status.PENDING),
        # It bounced (v2 CHANGE, v3 ABNORMAL): money left WeChat but did not reach the user — a person settles it.
        (Answer(outcome=Outcome.REJECTED, code="CHANGE"), Refund.Status.ATTENTION),
        (Answer(outcome=Outcome.REJECTED, code="ABNORMAL"), Refund.Status.ATTENTION),
        # Closed: nothing refunded, the amount is free again.
        (Answer(outcome=Outcome.REJECTED, code="CLOSED"), Refund.Status.FAILED),
    ],
)
def test_refund_query_answers_in_either_versions_words(shop, answer, status):
    order = shop.pay(1000)
    payment = shop.payment(order["out_trade_no"])
    refund = refund_create(payment=payment, refund_fee=300, reason="退货", user=None, actor_label="test")

    services._apply_refund_query(payment, refund, answer, shop.clock.now())

    assert refund.status == status
    if status == Refund.Status.ATTENTION:
        assert refund.err_code == answer.code and answer.code in refund.err_message


def test_a_refund_wechat_does_not_know_is_order_missing_in_either_version(make_shop):
    """The channel says "no such refund" the same way for v2 (REFUNDNOTEXIST) and v3 (RESOURCE_NOT_EXISTS)."""
    from payments import channels

    for wechat_api in (Merchant.WechatApi.V2, Merchant.WechatApi.V3):
        shop = make_shop(Merchant.Channel.WECHAT_DIRECT, wechat_api=wechat_api)
        payment = shop.payment(shop.pay(1000)["out_trade_no"])
        never_sent = refund_create(payment=payment, refund_fee=100, reason="退货", user=None, actor_label="test")

        answer = channels.refund_query(refund=never_sent)

        assert (answer.outcome, answer.order_missing) == (Outcome.REJECTED, True)


def test_an_answer_signed_with_an_unknown_serial_asks_for_the_certificates_at_once(
    shop, monkeypatch, django_capture_on_commit_callbacks
):
    """WeChat switched to a new platform certificate before the schedule downloaded it: the payment's answer cannot
    be verified (unknown, not failed), a download of the signing credentials' certificates is queued at once (once),
    and after it the order's query verifies and settles it — no reverse, no person."""
    from payments import tasks
    from portal import jobs
    from portal.selectors import signing_credentials_for
    from sandbox.services import sandbox_rotate_platform_certificate

    sent = []
    monkeypatch.setattr(jobs, "_send", lambda task, args, countdown: sent.append((task, args)))
    credentials = signing_credentials_for(shop.merchant)
    partner = shop.merchant.channel == Merchant.Channel.WECHAT_PROVIDER
    signer = shop.merchant.provider.wechat_mch_id if partner else shop.merchant.mch_id
    sandbox_rotate_platform_certificate(signer, switch_at=shop.clock.now())  # WeChat signs with the new one at once

    with django_capture_on_commit_callbacks(execute=True):
        order = shop.pay(1000)
        shop.pay(1000)  # a second unverifiable answer within the minute: no second download

    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "PAYING"
    micropay = payment.events.get(action="micropay")
    assert (micropay.outcome, micropay.code) == ("UNKNOWN", "BAD_SIGNATURE")
    refreshes = [args for task, args in sent if task == "payments.tasks.refresh_platform_certificates_of"]
    assert refreshes == [[credentials.pk]]

    assert tasks.refresh_platform_certificates_of(credentials.pk) == "REFRESHED"
    shop.run_worker(10)

    assert shop.payment(order["out_trade_no"]).status == "SUCCESS"
    assert "reverse" not in kinds(shop)
    assert_money_agrees(shop, order["out_trade_no"])

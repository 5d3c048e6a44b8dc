"""Each WeChat scenario's observable behaviour through the gateway: micropay → orderquery → reverse."""

from __future__ import annotations

import pytest

from payments.gateways import wechatpay_v2 as v2
from payments.gateways.base import Outcome
from payments.gateways.http import Timeouts
from sandbox import services
from sandbox.models import SandboxWechatOrder

from .conftest import AUTH_CODE, v2_config

pytestmark = pytest.mark.django_db
CONFIG = v2_config()


def pay(http_client, total_fee: int, out_trade_no: str = "S1", **kwargs):
    request = v2.MicropayRequest(
        out_trade_no=out_trade_no, total_fee=total_fee, body="b", auth_code=AUTH_CODE, spbill_create_ip="1.2.3.4"
    )
    return v2.micropay(CONFIG, request, client=http_client, **kwargs)


def query(http_client, out_trade_no: str = "S1", **kwargs):
    return v2.orderquery(CONFIG, v2.OrderQueryRequest(out_trade_no=out_trade_no), client=http_client, **kwargs)


def reverse(http_client, out_trade_no: str = "S1"):
    return v2.reverse(CONFIG, v2.ReverseRequest(out_trade_no=out_trade_no), client=http_client)


def test_101_userpaying_then_success(wechat_merchant, http_client, sandbox_clock):
    paid = pay(http_client, 101)
    assert (paid.outcome, paid.code) == (Outcome.UNKNOWN, "USERPAYING")
    assert query(http_client).trade_state == "USERPAYING"
    sandbox_clock.advance(10)
    done = query(http_client)
    assert (done.outcome, done.trade_state, done.total_fee) == (Outcome.SUCCESS, "SUCCESS", 101)
    assert done.openid and done.time_end
    assert services.sandbox_ledger()["S1"]["charged"] == 101


def test_102_userpaying_never_paid_refuses_the_reverse_until_wechat_closes_it(
    wechat_merchant, http_client, sandbox_clock
):
    """WeChat: an order the user is still paying cannot be reversed (USERPAYING), and WeChat revokes an
    unpaid quick-pay order after 45 s — after that the reverse succeeds."""
    assert pay(http_client, 1102).code == "USERPAYING"
    sandbox_clock.advance(20)
    assert query(http_client).trade_state == "USERPAYING"
    refused = reverse(http_client)
    assert (refused.outcome, refused.code, refused.recall) == (Outcome.TRANSIENT, "USERPAYING", True)
    sandbox_clock.advance(30)  # 50 s after the payment call
    assert query(http_client).trade_state == "REVOKED"
    assert reverse(http_client).outcome is Outcome.SUCCESS
    assert services.sandbox_ledger()["S1"]["charged"] == 0


def test_103_systemerror_but_paid(wechat_merchant, http_client):
    paid = pay(http_client, 103)
    assert (paid.outcome, paid.code) == (Outcome.UNKNOWN, "SYSTEMERROR")
    assert query(http_client).trade_state == "SUCCESS"


@pytest.mark.parametrize(("amount", "code"), [(104, "NOTENOUGH"), (105, "AUTHCODEEXPIRE")])
def test_definite_failures(wechat_merchant, http_client, amount, code):
    paid = pay(http_client, amount)
    assert (paid.outcome, paid.code) == (Outcome.REJECTED, code)
    result = query(http_client)
    assert (result.outcome, result.trade_state) == (Outcome.REJECTED, "PAYERROR")
    assert services.sandbox_ledger()["S1"]["charged"] == 0


def test_106_micropay_times_out_but_charge_succeeds(wechat_merchant, http_client, sandbox_clock):
    paid = pay(http_client, 106, timeouts=Timeouts(read=10.0))

    assert (paid.outcome, paid.code) == (Outcome.UNKNOWN, "TIMEOUT")
    assert sandbox_clock.slept == [15.0]
    assert query(http_client).trade_state == "SUCCESS"
    assert services.sandbox_ledger()["S1"]["charged"] == 106


def test_106_sleep_is_a_setting(wechat_merchant, http_client, sandbox_clock, settings):
    settings.SANDBOX_TIMEOUT_SLEEP_SECONDS = 1
    paid = pay(http_client, 106, timeouts=Timeouts(read=10.0))
    # A patient client gets the (late) answer.
    assert paid.outcome is Outcome.SUCCESS and sandbox_clock.slept == [1.0]


def test_107_first_orderquery_times_out(wechat_merchant, http_client, sandbox_clock):
    assert pay(http_client, 107).code == "USERPAYING"
    first = query(http_client, timeouts=Timeouts(read=10.0))
    second = query(http_client)
    assert (first.outcome, first.code) == (Outcome.TRANSIENT, "TIMEOUT")
    # The 15 s the query was held are past the 10 s settle time: the payment went through meanwhile.
    assert (second.outcome, second.trade_state) == (Outcome.SUCCESS, "SUCCESS")


def test_108_reverse_recall_once(wechat_merchant, http_client):
    assert pay(http_client, 108).code == "USERPAYING"
    first = reverse(http_client)
    second = reverse(http_client)
    assert (first.outcome, first.recall, first.code) == (Outcome.TRANSIENT, True, "SYSTEMERROR")
    assert (second.outcome, second.recall) == (Outcome.SUCCESS, False)
    assert query(http_client).trade_state == "REVOKED"


def test_109_reverse_expire(wechat_merchant, http_client):
    assert pay(http_client, 109).code == "USERPAYING"
    result = reverse(http_client)
    assert (result.outcome, result.recall, result.code) == (Outcome.REJECTED, False, "REVERSE_EXPIRE")
    assert query(http_client).trade_state == "USERPAYING"


def test_110_userpaying_then_fail(wechat_merchant, http_client, sandbox_clock):
    assert pay(http_client, 110).code == "USERPAYING"
    sandbox_clock.advance(10)
    result = query(http_client)
    assert (result.outcome, result.trade_state) == (Outcome.REJECTED, "PAYERROR")


def test_111_bankerror_not_paid(wechat_merchant, http_client):
    paid = pay(http_client, 111)
    assert (paid.outcome, paid.code) == (Outcome.UNKNOWN, "BANKERROR")
    assert query(http_client).trade_state == "PAYERROR"


def test_reversing_a_paid_order_refunds_it(wechat_merchant, http_client):
    assert pay(http_client, 1000).outcome is Outcome.SUCCESS
    assert reverse(http_client).outcome is Outcome.SUCCESS
    assert reverse(http_client).outcome is Outcome.SUCCESS  # repeating gives the first result
    order = SandboxWechatOrder.objects.get()
    assert order.reversed_after_payment and order.state == "REVOKED"
    assert services.sandbox_ledger()["S1"]["charged"] == 0


def test_header_overrides_amount(wechat_merchant, http_client):
    http_client.headers["X-Sandbox-Scenario"] = "notenough"
    assert pay(http_client, 1000).code == "NOTENOUGH"


def test_unknown_or_foreign_header_scenario_is_an_error(wechat_merchant, http_client):
    http_client.headers["X-Sandbox-Scenario"] = "UMF_DECLINED"
    result = pay(http_client, 1000)
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "HTTP_400")
    assert not SandboxWechatOrder.objects.exists()


def test_preset_for_order_number(wechat_merchant, http_client):
    services.sandbox_preset_scenario(out_trade_no="P1", scenario="SYSTEMERROR_PAID")
    assert pay(http_client, 1000, out_trade_no="P1").code == "SYSTEMERROR"
    assert pay(http_client, 1000, out_trade_no="P2").outcome is Outcome.SUCCESS


def test_preset_rejects_unknown_names(db):
    with pytest.raises(ValueError, match="unknown sandbox scenario"):
        services.sandbox_preset_scenario(out_trade_no="P1", scenario="NOPE")

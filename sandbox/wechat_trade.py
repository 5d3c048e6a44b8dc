"""The WeChat order book's business rules, whatever the protocol: paying with a payment code, querying, reversing,
refunding. The v2 (XML, views_v2.py) and v3 (JSON, views_v3_pay.py) stand-ins both call these, so an order
behaves the same whichever API made or reads it, and both APIs see the same orders, bills and ledger.

A refusal is raised as `Refused(reason)`; each protocol answers it in its own words (v2 err_code, v3 HTTP status and
code). The state a call changed (a query counted, a reverse counted) is committed before the refusal is raised, as
the scenarios that depend on the number of calls need.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction

from . import book, clock, identity, scenarios
from .models import SandboxWechatOrder, SandboxWechatRefund
from .scenarios import Scenario
from .services import preset_for

State = SandboxWechatOrder.State

# Scenarios whose payment call fails with a business error (the order is PAYERROR, or paid for SYSTEMERROR_PAID).
PAY_FAILURES = frozenset(
    {Scenario.SYSTEMERROR_PAID, Scenario.NOTENOUGH, Scenario.AUTHCODEEXPIRE, Scenario.BANKERROR_NOT_PAID}
)
_PENDING = frozenset(
    {
        Scenario.USERPAYING_THEN_SUCCESS,
        Scenario.USERPAYING_NEVER_PAID,
        Scenario.USERPAYING_THEN_FAIL,
        Scenario.ORDERQUERY_TIMEOUT,
        Scenario.REVERSE_RECALL_ONCE,
        Scenario.REVERSE_EXPIRE,
    }
)
_SETTLING = frozenset({Scenario.USERPAYING_THEN_SUCCESS, Scenario.USERPAYING_THEN_FAIL, Scenario.ORDERQUERY_TIMEOUT})
UNPAID_CLOSE_SECONDS = 45  # WeChat revokes a quick-pay order the user never paid 45 s after the call
REVERSE_DAYS = 7  # orders older than this cannot be reversed (refund them)
_PAID_AT_ONCE = frozenset({Scenario.SUCCESS, Scenario.SYSTEMERROR_PAID, Scenario.MICROPAY_TIMEOUT_PAID})
_APPLIES = _PENDING | _PAID_AT_ONCE | PAY_FAILURES


TRADE_STATE_DESC = {
    State.SUCCESS: "支付成功",
    State.REFUND: "转入退款",
    State.NOTPAY: "未支付",
    State.CLOSED: "已关闭",
    State.REVOKED: "已撤销（刷卡支付）",
    State.USERPAYING: "用户支付中，需要输入密码",
    State.PAYERROR: "支付失败",
}


class Refusal(enum.StrEnum):
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    # The same out_trade_no paid again: never a second charge.
    OUT_TRADE_NO_USED = "OUT_TRADE_NO_USED"  # another amount, or an order that failed
    ORDER_PAID = "ORDER_PAID"
    ORDER_REVERSED = "ORDER_REVERSED"
    ORDER_CLOSED = "ORDER_CLOSED"
    USERPAYING = "USERPAYING"
    # Reverse
    REVERSE_RETRY = "REVERSE_RETRY"  # the REVERSE_RECALL_ONCE scenario's first call: a system error, call again
    REVERSE_EXPIRED = "REVERSE_EXPIRED"
    REVERSE_REFUNDED = "REVERSE_REFUNDED"
    REVERSE_USERPAYING = "REVERSE_USERPAYING"  # the user is still paying: call again later
    # Refund
    REFUND_AMOUNT_CHANGED = "REFUND_AMOUNT_CHANGED"  # the same out_refund_no with another amount
    REFUND_NOT_PAID = "REFUND_NOT_PAID"
    REFUND_TOTAL_DIFFERS = "REFUND_TOTAL_DIFFERS"
    REFUND_EXCEEDS = "REFUND_EXCEEDS"


class Refused(Exception):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


# --- pay ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PayRequest:
    mch_id: str
    sub_mch_id: str  # "" for a direct merchant
    appid: str  # the appid bound to mch_id (the provider's for a sub-merchant): the payer's openid is under it
    sub_appid: str = ""
    out_trade_no: str
    total_fee: int  # fen, > 0
    body: str
    attach: str = ""
    device_info: str = ""
    auth_code: str  # a WeChat payment code (the caller checks its shape)
    scenario_header: str | None = None


def _settles_at(scenario: Scenario, now):
    if scenario in _SETTLING:
        return now + timedelta(seconds=scenarios.settle_seconds())
    if scenario == Scenario.USERPAYING_NEVER_PAID:
        return now + timedelta(seconds=UNPAID_CLOSE_SECONDS)
    return None


def pay(request: PayRequest) -> SandboxWechatOrder:
    """Create the order as its scenario decides (header > preset > amount). Raises scenarios.UnknownScenario for a
    scenario of another channel, and Refused for an out_trade_no already used (whatever its state).

    The returned order is what the payment call reports: `pay_failure(order)` if its scenario fails the call,
    USERPAYING while pending, else paid. MICROPAY_TIMEOUT_PAID holds the answer past the client's timeout here."""
    scenario = scenarios.resolve(
        header=request.scenario_header,
        preset=preset_for(request.out_trade_no),
        amount=request.total_fee,
        table=scenarios.WECHAT_AMOUNT_CODES,
    )
    if scenario not in _APPLIES:
        raise scenarios.UnknownScenario(f"scenario {scenario} does not apply to WeChat micropay")
    now = clock.now()
    user = identity.user_of_code(request.auth_code)
    if scenario in _PAID_AT_ONCE:
        state, paid_at = State.SUCCESS, now
    elif scenario in _PENDING:
        state, paid_at = State.USERPAYING, None
    else:
        state, paid_at = State.PAYERROR, None
    try:
        with transaction.atomic():
            order = SandboxWechatOrder.objects.create(
                mch_id=request.mch_id,
                sub_mch_id=request.sub_mch_id,
                appid=request.sub_appid or request.appid,
                out_trade_no=request.out_trade_no,
                transaction_id=identity.wechat_transaction_id(),
                total_fee=request.total_fee,
                body=request.body[:128],
                attach=request.attach[:127],
                device_info=request.device_info[:32],
                state=state,
                scenario=scenario.value,
                openid=identity.openid_for(user, request.appid),
                sub_openid=identity.openid_for(user, request.sub_appid) if request.sub_appid else "",
                created_at=now,
                paid_at=paid_at,
                settles_at=_settles_at(scenario, now),
            )
    except IntegrityError:
        # The same out_trade_no again (a retry, or a concurrent duplicate).
        existing = SandboxWechatOrder.objects.get(
            mch_id=request.mch_id, sub_mch_id=request.sub_mch_id, out_trade_no=request.out_trade_no
        )
        raise Refused(_repeat_refusal(existing, request.total_fee)) from None
    if scenario == Scenario.MICROPAY_TIMEOUT_PAID:
        # The charge is committed; the answer comes after the client has given up (unknown outcome).
        clock.sleep(scenarios.timeout_sleep_seconds())
    return order


def _repeat_refusal(order: SandboxWechatOrder, total_fee: int) -> Refusal:
    book.settle_wechat(order)
    if order.total_fee != total_fee:
        return Refusal.OUT_TRADE_NO_USED
    if order.state in (State.SUCCESS, State.REFUND):
        return Refusal.ORDER_PAID
    if order.state == State.REVOKED:
        return Refusal.ORDER_REVERSED
    if order.state == State.CLOSED:
        return Refusal.ORDER_CLOSED
    if order.state == State.USERPAYING:
        return Refusal.USERPAYING
    return Refusal.OUT_TRADE_NO_USED


def pay_failure(order: SandboxWechatOrder) -> Scenario | None:
    """The failing scenario the payment call reports for this order, if any."""
    scenario = Scenario(order.scenario)
    return scenario if scenario in PAY_FAILURES else None


# --- query / reverse ---------------------------------------------------------------------------------------------


def find(
    *, mch_id: str, sub_mch_id: str, transaction_id: str = "", out_trade_no: str = "", for_update: bool = False
) -> SandboxWechatOrder | None:
    """One merchant's order by transaction_id, else out_trade_no: another merchant's orders are never found."""
    orders = SandboxWechatOrder.objects.filter(mch_id=mch_id, sub_mch_id=sub_mch_id)
    if for_update:
        orders = orders.select_for_update()
    if transaction_id:
        return orders.filter(transaction_id=transaction_id).first()
    if out_trade_no:
        return orders.filter(out_trade_no=out_trade_no).first()
    return None


def query(*, mch_id: str, sub_mch_id: str, transaction_id: str = "", out_trade_no: str = "") -> SandboxWechatOrder:
    """The order as it is now (due transitions applied). ORDERQUERY_TIMEOUT holds the first answer past the
    client's timeout. Raises Refused(ORDER_NOT_FOUND)."""
    with transaction.atomic():
        order = find(
            mch_id=mch_id,
            sub_mch_id=sub_mch_id,
            transaction_id=transaction_id,
            out_trade_no=out_trade_no,
            for_update=True,
        )
        if order is not None:
            book.settle_wechat(order)
            order.query_calls += 1
            order.save(update_fields=["query_calls"])
    if order is None:
        raise Refused(Refusal.ORDER_NOT_FOUND)
    if order.scenario == Scenario.ORDERQUERY_TIMEOUT and order.query_calls == 1:
        clock.sleep(scenarios.timeout_sleep_seconds())
        order = book.settle_wechat(SandboxWechatOrder.objects.get(pk=order.pk))
    return order


def _reverse_locked(order: SandboxWechatOrder) -> Refusal | None:
    book.settle_wechat(order)
    order.reverse_calls += 1
    order.save(update_fields=["reverse_calls"])
    if order.scenario == Scenario.REVERSE_RECALL_ONCE and order.reverse_calls == 1:
        return Refusal.REVERSE_RETRY
    if order.scenario == Scenario.REVERSE_EXPIRE:
        return Refusal.REVERSE_EXPIRED
    if order.created_at < clock.now() - timedelta(days=REVERSE_DAYS):
        return Refusal.REVERSE_EXPIRED
    if order.refunds.exists():
        return Refusal.REVERSE_REFUNDED
    if order.state == State.USERPAYING and order.settles_at is not None:
        # WeChat refuses to reverse an order the user is still paying (用户正在支付中的订单不允许撤销): here, while
        # the user is still paying in the scenarios whose paying ends by itself (paid, failed, or closed by WeChat
        # after 45 s). Scenarios 108/109 exist to test the reverse itself.
        return Refusal.REVERSE_USERPAYING
    if order.state not in (State.REVOKED, State.CLOSED):
        order.reversed_after_payment = order.paid_at is not None
        order.state, order.settles_at, order.reversed_at = State.REVOKED, None, clock.now()
        order.save(update_fields=["state", "settles_at", "reversed_at", "reversed_after_payment"])
    return None


def reverse(
    *, mch_id: str, sub_mch_id: str, transaction_id: str = "", out_trade_no: str = ""
) -> SandboxWechatOrder | None:
    """Revoke the order (refunding the user if it was paid). None when there is no such order: nothing reached
    WeChat, so there is nothing to undo. (Doubtful: WeChat's exact answer for an unknown order is not documented;
    "reversed" is the answer that keeps the merchant's flow moving.) Raises Refused, after committing the call."""
    with transaction.atomic():
        order = find(
            mch_id=mch_id,
            sub_mch_id=sub_mch_id,
            transaction_id=transaction_id,
            out_trade_no=out_trade_no,
            for_update=True,
        )
        refusal = None if order is None else _reverse_locked(order)
    if refusal is not None:
        raise Refused(refusal)
    return order


# --- refund ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RefundRequest:
    mch_id: str
    sub_mch_id: str
    transaction_id: str = ""
    out_trade_no: str = ""
    out_refund_no: str
    total_fee: int  # the order's amount, as the merchant believes it
    refund_fee: int  # > 0


def _refund_locked(
    order: SandboxWechatOrder, request: RefundRequest
) -> tuple[SandboxWechatRefund | None, Refusal | None]:
    book.settle_wechat(order)
    existing = order.refunds.filter(out_refund_no=request.out_refund_no).first()
    if existing is not None:
        # Retrying with the same out_refund_no is how merchants settle an unknown refund answer.
        if existing.refund_fee != request.refund_fee:
            return None, Refusal.REFUND_AMOUNT_CHANGED
        return existing, None
    if order.state not in (State.SUCCESS, State.REFUND):
        return None, Refusal.REFUND_NOT_PAID
    if request.total_fee != order.total_fee:
        return None, Refusal.REFUND_TOTAL_DIFFERS
    already = sum(r.refund_fee for r in order.refunds.all())
    if already + request.refund_fee > order.total_fee:
        return None, Refusal.REFUND_EXCEEDS
    now = clock.now()
    created = SandboxWechatRefund.objects.create(
        order=order,
        out_refund_no=request.out_refund_no,
        refund_id=identity.wechat_refund_id(),
        refund_fee=request.refund_fee,
        state=SandboxWechatRefund.State.PROCESSING,
        created_at=now,
        succeeds_at=now + timedelta(seconds=scenarios.refund_seconds()),
    )
    order.state = State.REFUND
    order.save(update_fields=["state"])
    return created, None


def refund(request: RefundRequest) -> tuple[SandboxWechatOrder, SandboxWechatRefund]:
    """Accept a refund (PROCESSING, done SANDBOX_REFUND_SECONDS later), or find the one already accepted under the
    same out_refund_no. Raises Refused."""
    with transaction.atomic():
        order = find(
            mch_id=request.mch_id,
            sub_mch_id=request.sub_mch_id,
            transaction_id=request.transaction_id,
            out_trade_no=request.out_trade_no,
            for_update=True,
        )
        if order is None:
            accepted, refusal = None, Refusal.ORDER_NOT_FOUND
        else:
            accepted, refusal = _refund_locked(order, request)
    if refusal is not None:
        raise Refused(refusal)
    assert order is not None and accepted is not None
    return order, accepted


def find_refund(*, mch_id: str, sub_mch_id: str, out_refund_no: str) -> SandboxWechatRefund | None:
    """One merchant's refund by out_refund_no, its order's due transitions applied."""
    found = (
        SandboxWechatRefund.objects.filter(
            order__mch_id=mch_id, order__sub_mch_id=sub_mch_id, out_refund_no=out_refund_no
        )
        .select_related("order")
        .order_by("pk")
        .first()
    )
    if found is None:
        return None
    book.settle_wechat(found.order)
    found.refresh_from_db()
    return found

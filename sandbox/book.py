"""The order book's time-driven transitions and the ledger.

Pending outcomes (USERPAYING that later succeeds or fails, UMF 02, refunds PROCESSING) are stored with the moment
they settle and applied lazily: whenever an order is read (query, reverse, refund, ledger) and by `advance()`,
which the notification task runs first so callbacks for late successes go out even if nobody queries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from payments.gateways import umpay

from . import clock, outbox
from .models import (
    SandboxPayscoreOrder,
    SandboxUmpayIdentity,
    SandboxUmpayOrder,
    SandboxUmpayRefund,
    SandboxWechatOrder,
    SandboxWechatRefund,
)
from .scenarios import Scenario

WxState = SandboxWechatOrder.State


def settle_wechat(order: SandboxWechatOrder, now: datetime | None = None) -> SandboxWechatOrder:
    now = now or clock.now()
    if order.state == WxState.USERPAYING and order.settles_at is not None and now >= order.settles_at:
        if order.scenario == Scenario.USERPAYING_THEN_FAIL:
            order.state = WxState.PAYERROR
        elif order.scenario == Scenario.USERPAYING_NEVER_PAID:
            order.state = WxState.REVOKED  # WeChat revokes a quick-pay order the user never paid 45 s after the call
        else:
            order.state = WxState.SUCCESS
            order.paid_at = order.settles_at
        order.settles_at = None
        order.save(update_fields=["state", "paid_at", "settles_at"])
    for refund in order.refunds.filter(state=SandboxWechatRefund.State.PROCESSING, succeeds_at__lte=now):
        refund.state = SandboxWechatRefund.State.SUCCESS
        refund.succeeded_at = refund.succeeds_at
        refund.save(update_fields=["state", "succeeded_at"])
    return order


def umpay_key() -> str:
    identity = SandboxUmpayIdentity.objects.order_by("pk").first()
    if identity is None:
        raise LookupError("no UMF provider registered in the sandbox")
    return identity.private_key_pem.reveal()


def china_time(moment: datetime, fmt: str) -> str:
    return timezone.localtime(moment).strftime(fmt)


CHINA_TZ = umpay.CHINA_TZ


def rfc3339(moment: datetime) -> str:
    """China time with its offset, to the second, as WeChat's v3 APIs write times: 2026-01-02T03:04:05+08:00."""
    return moment.astimezone(CHINA_TZ).isoformat(timespec="seconds")


def localtime(moment: datetime) -> datetime:
    """China time, naive (as the channels' bills print it)."""
    return moment.astimezone(CHINA_TZ).replace(tzinfo=None)


def mark_umpay_paid(order: SandboxUmpayOrder, paid_at: datetime) -> None:
    """Record the charge and owe the backUrl a trade notification."""
    order.orig_resp_code = "00"
    order.paid_at = paid_at
    order.settles_at = None
    order.save(update_fields=["orig_resp_code", "paid_at", "settles_at"])
    if order.back_url:
        fields = {
            "acqSpId": order.acq_sp_id,
            "acqMerId": order.acq_mer_id,
            "orderNo": order.order_no,
            "orderTime": order.order_time,
            "orderType": order.order_type,
            "transactionId": order.transaction_id,
            "txnAmt": str(order.txn_amt),
            "respCode": "00",
            "respMsg": "交易成功",
            "platDate": china_time(paid_at, "%Y%m%d"),
            "depBankSeq": order.dep_bank_seq,
            "merPriv": order.mer_priv,
        }
        signed = umpay.sign_notification({k: v for k, v in fields.items() if v}, umpay_key())
        outbox.enqueue_umpay(url=order.back_url, fields=signed, order_no=order.order_no)


def settle_umpay(order: SandboxUmpayOrder, now: datetime | None = None) -> SandboxUmpayOrder:
    now = now or clock.now()
    if order.orig_resp_code == "02" and order.settles_at is not None and now >= order.settles_at:
        if order.scenario == Scenario.UMF_PASSWORD_THEN_FAIL:
            order.orig_resp_code = "06"
            order.settles_at = None
            order.save(update_fields=["orig_resp_code", "settles_at"])
        else:
            mark_umpay_paid(order, order.settles_at)
    order.refunds.filter(orig_resp_code="02", succeeds_at__lte=now).update(orig_resp_code="00")
    return order


def advance(now: datetime | None = None) -> None:
    """Apply every transition that is due (lazily-settled states, refunds)."""
    now = now or clock.now()
    for order in SandboxWechatOrder.objects.filter(state=WxState.USERPAYING, settles_at__lte=now):
        with transaction.atomic():
            settle_wechat(order, now)
    for refund in SandboxWechatRefund.objects.filter(
        state=SandboxWechatRefund.State.PROCESSING, succeeds_at__lte=now
    ).select_related("order"):
        settle_wechat(refund.order, now)
    for order in SandboxUmpayOrder.objects.filter(orig_resp_code="02", settles_at__lte=now):
        with transaction.atomic():
            settle_umpay(order, now)
    SandboxUmpayRefund.objects.filter(orig_resp_code="02", succeeds_at__lte=now).update(orig_resp_code="00")


def ledger(now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per order number: what the user is out of pocket (`charged`, net of reversal and completed refunds),
    `refunded` (completed refunds), `refund_pending`, `state` and `channel`.

    Keyed by out_trade_no (WeChat), orderNo (UMF) and out_order_no (PayScore); if the same number exists on two
    channels the later channel in that order wins, so tests should use distinct numbers.
    """
    now = now or clock.now()
    advance(now)
    result: dict[str, dict[str, Any]] = {}
    for order in SandboxWechatOrder.objects.all().order_by("pk"):
        paid = order.total_fee if order.paid_at else 0
        reversed_amount = paid if order.reversed_after_payment else 0
        done = order.refunds.filter(state=SandboxWechatRefund.State.SUCCESS).aggregate(s=Sum("refund_fee"))["s"] or 0
        pending = (
            order.refunds.filter(state=SandboxWechatRefund.State.PROCESSING).aggregate(s=Sum("refund_fee"))["s"] or 0
        )
        result[order.out_trade_no] = {
            "channel": "wechat",
            "charged": paid - reversed_amount - done,
            "refunded": done,
            "refund_pending": pending,
            "state": order.state,
        }
    for order in SandboxUmpayOrder.objects.all().order_by("pk"):
        paid = order.txn_amt if order.paid_at else 0
        reversed_amount = paid if order.reversed_after_payment else 0
        done = order.refunds.filter(orig_resp_code="00").aggregate(s=Sum("txn_amt"))["s"] or 0
        pending = order.refunds.filter(orig_resp_code="02").aggregate(s=Sum("txn_amt"))["s"] or 0
        result[order.order_no] = {
            "channel": "umpay",
            "charged": paid - reversed_amount - done,
            "refunded": done,
            "refund_pending": pending,
            "state": order.orig_resp_code,
        }
    for order in SandboxPayscoreOrder.objects.all().order_by("pk"):
        result[order.out_order_no] = {
            "channel": "payscore",
            "charged": order.paid_amount,
            "refunded": 0,
            "refund_pending": 0,
            "state": order.state,
        }
    return result

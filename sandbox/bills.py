"""The sandbox's trade bills, built from its ledger for the v2 downloadbill and the v3 tradebill alike: WeChat's ALL
format (payments.gateways.wechatpay_bill writes it), fees of 0.60 %, refunds as accepted, planted differences
applied (SCENARIOS.md, "Bills")."""

from __future__ import annotations

import gzip
from datetime import date, datetime, time, timedelta

from django.conf import settings

from payments.gateways import wechatpay_bill as bills

from . import book, clock
from .models import SandboxBillPlant, SandboxWechatOrder, SandboxWechatRefund

# The sandbox's fee rate: 0.60 %, rounded to the fen per row (refunds return the fee of what they refund).
FEE_PER_MILLE = 6


def _fee(amount: int) -> int:
    return (amount * FEE_PER_MILLE + 500) // 1000


def window(day: date) -> tuple[datetime, datetime] | None:
    """[start, end) of `day`'s bill (China time), or None while WeChat would still be creating it (today or later).
    With SANDBOX_BILLS_UNTIL_NOW today's bill is what happened so far."""
    start = datetime.combine(day, time(0), tzinfo=book.CHINA_TZ)
    end = start + timedelta(days=1)
    now = clock.now()
    today = book.localtime(now).date()
    if today == day and settings.SANDBOX_BILLS_UNTIL_NOW:
        return start, now  # the fault run's own day: the bill of what happened so far
    if today <= day:
        return None
    return start, end


def rows(*, mch_id: str, sub_mch_id: str, start: datetime, end: datetime) -> list[bills.WriteRow]:
    """The trade bill's detail rows of one merchant (`sub_mch_id` "" for a direct merchant) between start and end,
    planted differences applied."""
    plants = dict(SandboxBillPlant.objects.values_list("order_no", "kind"))
    orders = SandboxWechatOrder.objects.filter(
        mch_id=mch_id, sub_mch_id=sub_mch_id, paid_at__gte=start, paid_at__lt=end
    ).order_by("paid_at", "pk")
    found: list[bills.WriteRow] = []
    ids = {"mch_id": mch_id, "sub_mch_id": sub_mch_id}
    for order in orders:
        plant = plants.get(order.out_trade_no)
        if plant == SandboxBillPlant.Kind.OMIT:
            continue
        revoked = order.reversed_after_payment or plant == SandboxBillPlant.Kind.REVOKED
        total = order.total_fee + (1 if plant == SandboxBillPlant.Kind.AMOUNT else 0)
        row = bills.WriteRow(
            trade_time=book.localtime(order.paid_at),
            appid=order.appid,
            transaction_id=order.transaction_id,
            out_trade_no=order.out_trade_no,
            openid=order.openid,
            trade_state="REVOKED" if revoked else "SUCCESS",
            total_fee=total,
            fee=0 if revoked else _fee(total),
            body=order.body,
            device_info=order.device_info,
            **ids,
        )
        found.append(row)
        if plant == SandboxBillPlant.Kind.DUPLICATE:
            found.append(row)
    refunds = SandboxWechatRefund.objects.filter(
        order__mch_id=mch_id, order__sub_mch_id=sub_mch_id, created_at__gte=start, created_at__lt=end
    ).select_related("order")
    for refund in refunds.order_by("created_at", "pk"):
        plant = plants.get(refund.out_refund_no)
        if plant == SandboxBillPlant.Kind.REFUND_OMIT:
            continue
        amount = refund.refund_fee + (1 if plant == SandboxBillPlant.Kind.REFUND_AMOUNT else 0)
        order = refund.order
        found.append(
            bills.WriteRow(
                trade_time=book.localtime(refund.created_at),
                appid=order.appid,
                transaction_id=order.transaction_id,
                out_trade_no=order.out_trade_no,
                openid=order.openid,
                trade_state="REFUND",
                total_fee=0,
                fee=-_fee(amount),
                body=order.body,
                device_info=order.device_info,
                refund_id=refund.refund_id,
                out_refund_no=refund.out_refund_no,
                refund_fee=amount,
                # The bill is a snapshot at acceptance: a refund the ledger has not completed yet is PROCESSING.
                refund_status=refund.state,
                **ids,
            )
        )
    return found


def file(rows: list[bills.WriteRow], *, gzipped: bool) -> bytes:
    """The bill's bytes; gzip with mtime 0, so the same bill always compresses to the same bytes (the v3 answer's
    hash is of the file its download_url then serves)."""
    content = bills.write_wechat_bill(rows)
    return gzip.compress(content, mtime=0) if gzipped else content

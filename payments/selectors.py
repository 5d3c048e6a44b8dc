from __future__ import annotations

from django.db.models import QuerySet

from payments.models import Payment
from portal.errors import NotFound
from portal.models import Device
from portal.selectors import scope_queryset


def payment_for_device(*, device: Device, out_trade_no: str) -> Payment:
    """A terminal sees its merchant's orders (another terminal of the same store may ask about an order)."""
    payment = (
        Payment.objects.select_related("merchant", "store", "device")
        .filter(merchant_id=device.store.merchant_id, out_trade_no=out_trade_no)
        .first()
    )
    if payment is None:
        raise NotFound("No payment with this out_trade_no.", code="PAYMENT_NOT_FOUND")
    return payment


def payments_visible_to(user) -> QuerySet[Payment]:
    return scope_queryset(Payment.objects.select_related("merchant", "store", "device"), user)

"""UMF trade notifications (backUrl): store raw, verify, apply idempotently, acknowledge.

A notification only says "something happened to this order". It is applied by pulling the order's next check
forward so the worker queries now: the query answer, not the notification, settles the state (UMF sends at most 4
times, so notifications are never the only source of truth).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments import services
from payments.gateways import umpay
from payments.models import Payment, PaymentEvent, PaymentStatus, Refund, UmpayNotification
from portal import jobs
from portal.models import Merchant
from portal.selectors import signing_credentials_for

logger = logging.getLogger(__name__)


def _reject(record: UmpayNotification, status: int, reason: str) -> JsonResponse:
    record.result = reason
    record.save(update_fields=["result"])
    return JsonResponse({"respCode": "99", "respMsg": reason}, status=status)


@csrf_exempt
@require_POST
def umpay_notification(request: HttpRequest) -> JsonResponse:
    # Raw first, in its own transaction, so even a notification we cannot process is kept for support.
    record = UmpayNotification.objects.create(
        # Kept as text for support; NUL cannot be stored in PostgreSQL text, so it is replaced.
        body=request.body.decode("utf-8", "replace").replace("\x00", "\ufffd")[:20000],
        remote_addr=request.META.get("REMOTE_ADDR", ""),
    )
    try:
        fields = umpay.parse_notification_form(request.body)
    except ValueError:
        return _reject(record, 400, "unparseable")
    order_no, acq_mer_id = fields.get("orderNo", ""), fields.get("acqMerId", "")
    record.order_no = order_no[:64]
    record.save(update_fields=["order_no"])

    # acqMerId is unique per provider only: the provider's acqSpId picks the right one. UMF's documents do not list
    # a notification's fields, so without acqSpId an acqMerId two providers share is refused as ambiguous (the
    # scheduled queries settle the payment either way).
    candidates = Merchant.objects.filter(channel=Merchant.Channel.UMPAY, umpay_acq_mer_id=acq_mer_id)
    if fields.get("acqSpId"):
        candidates = candidates.filter(provider__umpay_acq_sp_id=fields["acqSpId"])
    found = list(candidates[:2])
    merchant = found[0] if len(found) == 1 else None
    if merchant is None or not order_no:
        return _reject(record, 404, "unknown merchant or order")
    credentials = signing_credentials_for(merchant)
    if credentials is None or not credentials.umpay_certificate:
        return _reject(record, 400, "merchant has no UMF certificate")
    if not umpay.verify_notification(fields, credentials.umpay_certificate):
        logger.warning("UMF notification with a bad signature for order %s", order_no)
        return _reject(record, 400, "bad signature")
    record.is_verified = True

    now = timezone.now()
    with transaction.atomic():
        payment = Payment.objects.select_for_update().filter(merchant=merchant, out_trade_no=order_no).first()
        refund = None
        if payment is None:
            refund = (
                Refund.objects.select_related("payment")
                .filter(payment__merchant=merchant, out_refund_no=order_no)
                .first()
            )
            if refund is not None:
                payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
                refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if payment is None:
            record.save(update_fields=["is_verified"])
            return _reject(record, 404, "unknown order")
        PaymentEvent.objects.create(
            payment=payment,
            refund=refund,
            action="notification",
            actor=PaymentEvent.Actor.NOTIFICATION,
            response={k: v for k, v in fields.items() if k != "sign"},
        )
        if refund is not None and refund.status in (Refund.Status.PENDING, Refund.Status.PROCESSING):
            refund.next_check_at = now
            refund.save(update_fields=["next_check_at", "updated_at"])
        elif payment.status in (PaymentStatus.PAYING,) and payment.next_check_at and payment.next_check_at > now:
            payment.next_check_at = now
            payment.save(update_fields=["next_check_at", "updated_at"])
        record.processed_at = now
        record.result = "applied"
        record.save(update_fields=["is_verified", "processed_at", "result"])
    if refund is not None:
        jobs.enqueue_on_commit(services.PROCESS_REFUND_TASK, refund.pk)
    else:
        jobs.enqueue_on_commit(services.RESOLVE_PAYMENT_TASK, payment.pk)
    return JsonResponse({"respCode": "00", "respMsg": "success"})

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
from portal import jobs, throttle
from portal.client_address import client_address
from portal.models import Merchant
from portal.selectors import signing_credentials_for

logger = logging.getLogger(__name__)
REFUND_NOTIFICATION = "3"  # notifyType: 1 payment, 2 cancel, 3 refund
OPEN_REFUND_STATES = (Refund.Status.PENDING, Refund.Status.PROCESSING)
THROTTLE_SCOPE = "notify-umpay"


def _answer(record: UmpayNotification, status: int, reason: str, *, private_key: str = "") -> JsonResponse:
    """UMF's table for the merchant's reply: respCode (00 received, anything else: notify again), respMsg and
    signature, signed like any request we send (our private key, sorted `k=v&…`). A refusal before the merchant is
    known cannot be signed: we do not know whose key to use."""
    received = status == 200
    message = "success" if received else reason
    body: dict = {"respCode": umpay.SUCCESS_CODE if received else "99", "respMsg": message}
    if private_key:
        try:
            body = umpay.notification_ack(private_key, received=received, message=message)
        except Exception:  # an unusable key must not turn an applied notification into a 500
            logger.exception("could not sign the UMF notification reply")
    if not received:
        record.result = reason
        record.save(update_fields=["result"])
        if not record.is_verified:
            throttle.spend(THROTTLE_SCOPE, record.remote_addr)
    return JsonResponse(body, status=status)


def _private_key(credentials) -> str:
    return credentials.umpay_private_key.reveal() if credentials is not None and credentials.umpay_private_key else ""


@csrf_exempt
@require_POST
def umpay_notification(request: HttpRequest) -> JsonResponse:
    address = client_address(request)
    if throttle.exhausted(THROTTLE_SCOPE, address):
        # Too many notifications from this address did not verify: refused unstored; UMF sends again (non-00).
        return JsonResponse({"respCode": "99", "respMsg": "throttled"}, status=429)
    # Raw first, in its own transaction, so even a notification we cannot process is kept for support.
    record = UmpayNotification.objects.create(
        # Kept as text for support; NUL cannot be stored in PostgreSQL text, so it is replaced.
        body=request.body.decode("utf-8", "replace").replace("\x00", "\ufffd")[:20000],
        remote_addr=address[:64],
    )
    try:
        fields = umpay.parse_notification_form(request.body)
    except ValueError:
        return _answer(record, 400, "unparseable")
    order_no, acq_mer_id = fields.get("orderNo", ""), fields.get("acqMerId", "")
    record.order_no = order_no[:64]
    record.save(update_fields=["order_no"])

    # acqMerId is unique per provider only: the provider's acqSpId picks the right one. Without acqSpId an acqMerId
    # two providers share is refused as ambiguous (the scheduled queries settle the payment either way).
    candidates = Merchant.objects.filter(channel=Merchant.Channel.UMPAY, umpay_acq_mer_id=acq_mer_id)
    if fields.get("acqSpId"):
        candidates = candidates.filter(provider__umpay_acq_sp_id=fields["acqSpId"])
    found = list(candidates[:2])
    merchant = found[0] if len(found) == 1 else None
    if merchant is None or not order_no:
        return _answer(record, 404, "unknown merchant or order")
    credentials = signing_credentials_for(merchant)
    key = _private_key(credentials)
    if credentials is None or not credentials.umpay_certificate:
        return _answer(record, 400, "merchant has no UMF certificate", private_key=key)
    if not umpay.verify_notification(fields, credentials.umpay_certificate):
        logger.warning("UMF notification with a bad signature for order %s", order_no)
        return _answer(record, 400, "bad signature", private_key=key)
    record.is_verified = True

    now = timezone.now()
    refund_no = fields.get("refundOrderNo", "")
    is_refund = fields.get("notifyType") == REFUND_NOTIFICATION or bool(refund_no)
    with transaction.atomic():
        # Lock order: payment first, then its refunds (as every path that takes both).
        payment = Payment.objects.select_for_update().filter(merchant=merchant, out_trade_no=order_no).first()
        refunds: list[Refund] = []
        if payment is None:
            # orderNo may be a refund's own number.
            refund_payment_id = (
                Refund.objects.filter(payment__merchant=merchant, out_refund_no=order_no)
                .values_list("payment_id", flat=True)
                .first()
            )
            if refund_payment_id is not None:
                payment = Payment.objects.select_for_update().get(pk=refund_payment_id)
                refunds = list(Refund.objects.select_for_update().filter(payment=payment, out_refund_no=order_no))
        elif is_refund:
            # A refund notification (notifyType 3) names the payment in orderNo: its refund — the one refundOrderNo
            # names, else every refund of the payment still open — is queried now.
            open_refunds = Refund.objects.select_for_update().filter(
                payment=payment, kind=Refund.Kind.REFUND, status__in=OPEN_REFUND_STATES
            )
            if refund_no:
                open_refunds = open_refunds.filter(out_refund_no=refund_no)
            refunds = list(open_refunds.order_by("pk"))
        if payment is None:
            record.save(update_fields=["is_verified"])
            return _answer(record, 404, "unknown order", private_key=key)
        PaymentEvent.objects.create(
            payment=payment,
            refund=refunds[0] if len(refunds) == 1 else None,
            action="notification",
            actor=PaymentEvent.Actor.NOTIFICATION,
            response={k: v for k, v in fields.items() if k != "sign"},
        )
        due = [refund for refund in refunds if refund.status in OPEN_REFUND_STATES]
        for refund in due:
            refund.next_check_at = now
            refund.save(update_fields=["next_check_at", "updated_at"])
        if (
            not refunds
            and payment.status == PaymentStatus.PAYING
            and payment.next_check_at
            and payment.next_check_at > now
        ):
            payment.next_check_at = now
            payment.save(update_fields=["next_check_at", "updated_at"])
        record.processed_at = now
        record.result = "applied"
        record.save(update_fields=["is_verified", "processed_at", "result"])
    if refunds:
        for refund in due:
            jobs.enqueue_on_commit(services.PROCESS_REFUND_TASK, refund.pk)
    else:
        jobs.enqueue_on_commit(services.RESOLVE_PAYMENT_TASK, payment.pk)
    return _answer(record, 200, "", private_key=key)

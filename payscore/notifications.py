"""PayScore notifications at /notify/wechatpay/payscore/: store raw, verify, dedupe, apply, then answer.

Which merchant sent it: the notify_url is shared by all merchants, so the `Wechatpay-Serial` header picks the
candidates — every set of WeChat credentials whose platform certificate serial or platform public-key id equals it.
The signature must verify with that key, and the resource must decrypt (AES-256-GCM, authenticated) with the
credentials' APIv3 key: a successful decryption proves which credentials the notification was made for. The
order is then found among that merchant's orders (PayScore serves direct merchants only: their own credentials) by
WeChat's order_id, else by out_order_no (+ service_id).

Answer 204 only after the notification is applied (or recognised as a duplicate / an event type we only record);
anything else makes WeChat retry, so a notification we failed to process is never lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments import channels
from payments.gateways import wechatpay_v3
from payments.gateways.base import VerificationError
from payscore import services
from payscore.models import PayscoreNotification, ServiceOrder, ServiceOrderEvent
from portal import throttle
from portal.client_address import client_address
from portal.models import ChannelCredentials

logger = logging.getLogger(__name__)

APPLIED_EVENTS = ("PAYSCORE.USER_CONFIRM", "PAYSCORE.USER_PAID")
THROTTLE_SCOPE = "notify-payscore"
_KEPT_HEADERS = (
    "Wechatpay-Serial",
    "Wechatpay-Signature",
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Signature-Type",
    "Content-Type",
    "User-Agent",
    "Request-ID",
)


def _answer(record: PayscoreNotification, status: int, code: str, message: str) -> HttpResponse:
    record.http_status = status
    record.result = f"{code}: {message}"[:255] if code else message[:255]
    record.save(update_fields=["http_status", "result", "is_verified", "merchant", "service_order", "processed_at"])
    if status == 204:
        return HttpResponse(status=204)
    # WeChat's expected failure body; it retries on anything but 200/204.
    return JsonResponse({"code": code, "message": message}, status=status)


def _claimed(body: bytes) -> tuple[str, str]:
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", ""
    if not isinstance(envelope, dict):
        return "", ""
    return str(envelope.get("id", ""))[:64], str(envelope.get("event_type", ""))[:64]


def _candidates(serial: str) -> list[tuple[ChannelCredentials, Any]]:
    """(credentials, key) for every WeChat credential set that knows this Wechatpay-Serial."""
    if not serial:
        return []
    found = []
    rows = ChannelCredentials.objects.filter(
        Q(wechat_platform_public_key_id=serial) | ~Q(wechat_platform_certificates="")
    ).select_related("merchant", "provider")
    for credentials in rows:
        try:
            keys = channels.platform_keys(credentials)
        except Exception:  # one merchant's broken certificate must not stop the others' notifications
            logger.exception("unusable platform certificates in credentials %s", credentials.pk)
            continue
        if serial in keys:
            found.append((credentials, keys[serial]))
    return found


def _verify(headers: Mapping[str, str], body: bytes) -> tuple[ChannelCredentials, wechatpay_v3.Notification]:
    serial = headers.get("Wechatpay-Serial", "")
    candidates = _candidates(serial)
    if not candidates:
        raise VerificationError("unknown Wechatpay-Serial")
    error: VerificationError | None = None
    for credentials, key in candidates:
        api_v3_key = credentials.wechat_api_v3_key.reveal() if credentials.wechat_api_v3_key else ""
        if len(api_v3_key.encode()) != 32:
            error = VerificationError("APIv3 key not configured")
            continue
        try:
            notification = wechatpay_v3.parse_notification(
                headers, body, platform_keys={serial: key}, api_v3_key=api_v3_key, clock=services._timestamp
            )
        except VerificationError as exc:
            error = exc
            continue
        return credentials, notification
    raise error or VerificationError("notification does not verify")


def _find_order(credentials: ChannelCredentials, resource: Mapping[str, Any]) -> ServiceOrder | None:
    if not credentials.merchant_id:
        return None  # a provider's credentials sign for no PayScore orders (direct merchants only)
    orders = ServiceOrder.objects.filter(merchant_id=credentials.merchant_id)
    order_id = str(resource.get("order_id") or "")
    if order_id:
        match = orders.filter(order_id=order_id).first()
        if match is not None:
            return match
    out_order_no = str(resource.get("out_order_no") or "")
    if not out_order_no:
        return None
    matches = orders.filter(out_order_no=out_order_no)
    if resource.get("service_id"):
        matches = matches.filter(service_id=str(resource["service_id"]))
    found = list(matches[:2])
    return found[0] if len(found) == 1 else None


@csrf_exempt
@require_POST
def payscore_notification(request: HttpRequest) -> HttpResponse:
    address = client_address(request)
    if throttle.exhausted(THROTTLE_SCOPE, address):
        # Too many notifications from this address did not verify: refused unstored, in WeChat's error shape
        # (WeChat retries anything but 200/204).
        return JsonResponse({"code": "FREQUENCY_LIMITED", "message": "too many unverified requests"}, status=429)
    body = request.body
    claimed_id, event_type = _claimed(body)
    # Raw first, committed on its own, so even a notification we cannot process is kept for support.
    record = PayscoreNotification.objects.create(
        headers={name: request.headers[name] for name in _KEPT_HEADERS if name in request.headers},
        # Kept as text; NUL cannot be stored in PostgreSQL text, so it is replaced.
        body=body.decode("utf-8", "replace").replace("\x00", "\ufffd")[:65536],
        remote_addr=address[:64],
        claimed_id=claimed_id,
        event_type=event_type,
    )
    try:
        credentials, notification = _verify(request.headers, body)
    except VerificationError as exc:
        logger.warning("PayScore notification %s rejected: %s", record.pk, exc)
        throttle.spend(THROTTLE_SCOPE, address)
        return _answer(record, 401, "SIGN_ERROR", f"verification failed: {exc}")
    record.is_verified = True
    record.event_type = notification.event_type[:64]

    if notification.event_type not in APPLIED_EVENTS:
        # USER_OPEN_SERVICE / USER_CLOSE_SERVICE and anything new: kept (decrypted content in the raw row's
        # companions is not needed), acknowledged so WeChat stops retrying.
        return _acknowledge_only(record, notification)

    order = _find_order(credentials, notification.resource)
    if order is None:
        return _answer(record, 404, "ORDER_NOT_FOUND", "no such service order")
    record.merchant_id = order.merchant_id
    return _apply(record, order, notification)


def _claim_id(record: PayscoreNotification, notification_id: str) -> bool:
    """Take the notification id for this delivery; False when another delivery already has it (a duplicate)."""
    if not notification_id:
        return True
    try:
        with transaction.atomic():
            PayscoreNotification.objects.filter(pk=record.pk).update(notification_id=notification_id[:64])
    except IntegrityError:
        return False
    record.notification_id = notification_id[:64]
    return True


def _acknowledge_only(record: PayscoreNotification, notification: wechatpay_v3.Notification) -> HttpResponse:
    with transaction.atomic():
        if not _claim_id(record, notification.id):
            return _answer(record, 204, "", "duplicate")
        record.processed_at = services._now()
        return _answer(record, 204, "", f"recorded, not applied ({notification.event_type or 'no event_type'})")


def _apply(record: PayscoreNotification, order: ServiceOrder, notification: wechatpay_v3.Notification) -> HttpResponse:
    now = services._now()
    with transaction.atomic():
        # Order lock first: concurrent deliveries of the same notification queue here, then one claims the id.
        order = services._locked(order.pk)
        record.service_order = order
        if not _claim_id(record, notification.id):
            return _answer(record, 204, "", "duplicate")
        record.save(update_fields=["is_verified", "event_type", "merchant", "service_order"])
        services._event(
            order,
            "notification",
            actor=ServiceOrderEvent.Actor.NOTIFICATION,
            code=notification.event_type,
            message=notification.summary,
            response=notification.resource,
            notification=record,
        )
        before = order.state_label
        moved = services.apply_snapshot(
            order, notification.resource, actor=ServiceOrderEvent.Actor.NOTIFICATION, now=now, notification=record
        )
        if order.pending_action and services._pending_applied(order):
            if order.pending_action == ServiceOrder.PendingAction.COMPLETE:
                services._take_completed_content(order)
            services._settle_pending(order)
            order.last_error_code = order.last_error_message = ""
        order.save()
        record.processed_at = now
        result = f"applied: {before} → {order.state_label}" if moved else f"applied: no change ({order.state_label})"
        return _answer(record, 204, "", result)

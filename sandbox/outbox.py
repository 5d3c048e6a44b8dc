"""Callbacks the sandbox owes merchants: queued in SandboxNotification, sent by `deliver_due`.

WeChat v3 notifications keep one body (same id, same ciphertext) across retries but are signed at each attempt,
because receivers reject timestamps more than 300 s old. Retry schedules follow the upstreams: WeChat 15s, 15s,
30s, 3m, 10m, 20m, 30m, 30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h (16 attempts, about 24 h); UMF at most 4 times, 1 minute
apart.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from django.utils import timezone

from payments.gateways import wechatpay_v3

from . import clock, platform_keys
from .models import SandboxNotification, SandboxWechatMerchant

logger = logging.getLogger(__name__)

WECHAT_RETRY_DELAYS = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
UMPAY_RETRY_DELAYS = (60, 60, 60)
# A claimed row is not picked again for this long, so two workers never send the same attempt twice.
_CLAIM_SECONDS = 60
_TIMEOUT = httpx.Timeout(5.0)


def _delays(kind: str) -> tuple[int, ...]:
    return WECHAT_RETRY_DELAYS if kind == SandboxNotification.Kind.WECHAT_V3 else UMPAY_RETRY_DELAYS


def enqueue_wechat_v3(
    merchant: SandboxWechatMerchant, *, url: str, event_type: str, summary: str, resource: dict[str, Any], order_no: str
) -> SandboxNotification:
    now = clock.now()
    plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
    envelope = {
        "id": str(uuid.uuid4()),
        "create_time": timezone.localtime(now).isoformat(timespec="seconds"),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": wechatpay_v3.encrypt_notification_resource(
            plaintext,
            api_v3_key=merchant.api_v3_key.reveal(),
            associated_data="payscore",
            original_type="payscore",
        ),
    }
    return SandboxNotification.objects.create(
        kind=SandboxNotification.Kind.WECHAT_V3,
        url=url,
        body=json.dumps(envelope, ensure_ascii=False, separators=(",", ":")),
        headers={"Content-Type": "application/json"},
        signer_mch_id=merchant.mch_id,
        event_type=event_type,
        order_no=order_no,
        max_attempts=len(WECHAT_RETRY_DELAYS) + 1,
        next_attempt_at=now,
        created_at=now,
    )


def enqueue_umpay(*, url: str, fields: dict[str, str], order_no: str) -> SandboxNotification:
    """`fields` are already signed (umpay.sign_notification)."""
    now = clock.now()
    return SandboxNotification.objects.create(
        kind=SandboxNotification.Kind.UMPAY,
        url=url,
        body=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        event_type="TRADE",
        order_no=order_no,
        max_attempts=len(UMPAY_RETRY_DELAYS) + 1,
        next_attempt_at=now,
        created_at=now,
    )


def _headers(notification: SandboxNotification) -> dict[str, str]:
    headers = dict(notification.headers)
    if notification.kind == SandboxNotification.Kind.WECHAT_V3:
        merchant = SandboxWechatMerchant.objects.get(mch_id=notification.signer_mch_id)
        headers.update(platform_keys.sign(merchant, notification.body))
    return headers


def _accepted(kind: str, response: httpx.Response) -> bool:
    if kind == SandboxNotification.Kind.WECHAT_V3:
        return response.status_code in (200, 204)
    # UMF stops only on a {"respCode":"00"} answer.
    if response.status_code != 200:
        return False
    try:
        data = response.json()
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("respCode") == "00"


def _claim(notification: SandboxNotification, now: datetime) -> bool:
    claimed = SandboxNotification.objects.filter(
        pk=notification.pk, next_attempt_at=notification.next_attempt_at, delivered_at__isnull=True
    ).update(next_attempt_at=now + timedelta(seconds=_CLAIM_SECONDS))
    return claimed == 1


def deliver_due(*, client: httpx.Client | None = None, now: datetime | None = None) -> int:
    """Send every notification whose attempt is due; returns how many were accepted by the receiver."""
    now = now or clock.now()
    due = list(
        SandboxNotification.objects.filter(delivered_at__isnull=True, next_attempt_at__lte=now).order_by(
            "next_attempt_at", "pk"
        )
    )
    if not due:
        return 0  # nothing to send: no client to build (a new one loads the CA bundle)
    owns_client = client is None
    client = client or httpx.Client(timeout=_TIMEOUT, follow_redirects=False)
    delivered = 0
    try:
        for notification in due:
            if not _claim(notification, now):
                continue
            delivered += _attempt(client, notification, now)
    finally:
        if owns_client:
            client.close()
    return delivered


def _attempt(client: httpx.Client, notification: SandboxNotification, now: datetime) -> int:
    status: int | None = None
    error = ""
    accepted = False
    try:
        response = client.post(
            notification.url, content=notification.body.encode("utf-8"), headers=_headers(notification)
        )
        status = response.status_code
        accepted = _accepted(notification.kind, response)
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    notification.attempts += 1
    notification.last_status = status
    notification.last_error = error
    if accepted:
        notification.delivered_at = now
        notification.next_attempt_at = None
    elif notification.attempts >= notification.max_attempts:
        notification.next_attempt_at = None  # given up, like the upstream after its last retry
    else:
        delay = _delays(notification.kind)[notification.attempts - 1]
        notification.next_attempt_at = now + timedelta(seconds=delay)
    notification.save(
        update_fields=["attempts", "last_status", "last_error", "delivered_at", "next_attempt_at"],
    )
    logger.info(
        "sandbox notification %s attempt %s to %s: %s",
        notification.pk,
        notification.attempts,
        notification.url,
        status or error,
    )
    return 1 if accepted else 0

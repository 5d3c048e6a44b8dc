"""Every write of the webhooks app: events into the outbox, endpoints and their secrets, resending.

`event_emit` is called by the services of the apps whose changes are reported (payments, payscore,
reconciliation) inside the transaction that makes the change: the event and its deliveries commit or roll back with
it. Sending is `webhooks.delivery`'s work.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from rest_framework.fields import DateTimeField

from portal import jobs
from portal.errors import InvalidInput, InvalidState
from portal.fields import Secret
from portal.models import Merchant
from portal.services import audit_record
from webhooks.models import SUBSCRIBABLE, EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent

DELIVER_TASK = "webhooks.tasks.deliver"
_KICK_KEY = "webhooks:kick"
_kicked_at = 0.0  # this process's last kick (monotonic): at most one cache round trip per KICK interval
_KICK_INTERVAL = 0.5
_datetime = DateTimeField()


def _now() -> datetime:
    return timezone.now()


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# --- the outbox ----------------------------------------------------------------------------------------------------


def event_emit(*, merchant: Merchant, type: str, data: Callable[[], dict], order_key: str = "") -> WebhookEvent | None:
    """Record `type` for every active endpoint of the merchant that subscribes to it, in the caller's transaction.
    Nothing is written — and `data()`, which builds the event's data from the caller's rows as they are now, is not
    called — when no endpoint wants it; a merchant no endpoint listens to costs no query (`webhook_event_types`).
    `order_key` groups events that must reach an endpoint in the order they were made (a payment's, then its
    refunds')."""
    if type not in merchant.webhook_event_types:
        return None
    endpoints = WebhookEndpoint.objects.filter(merchant_id=merchant.pk, is_active=True).values_list("pk", "events")
    wanted = [pk for pk, events in endpoints if type in events]
    if not wanted:
        return None
    return _write_event(merchant_id=merchant.pk, type=type, data=data(), order_key=order_key, endpoint_ids=wanted)


def _write_event(*, merchant_id: int, type: str, data: dict, order_key: str, endpoint_ids: list[int]) -> WebhookEvent:
    now = _now()
    event_id = "evt_" + secrets.token_hex(12)
    body = json.dumps(
        {"id": event_id, "type": type, "created_at": _datetime.to_representation(now), "data": data},
        cls=DjangoJSONEncoder,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    event = WebhookEvent.objects.create(
        merchant_id=merchant_id, event_id=event_id, type=type, order_key=order_key[:64], body=body
    )
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(event=event, endpoint_id=pk, order_key=event.order_key, next_attempt_at=now)
        for pk in endpoint_ids
    )
    transaction.on_commit(kick)
    return event


def kick() -> None:
    """Ask a worker to send what is due now (deduplicated: one task per KICK interval across processes; the beat's
    periodic task covers whatever a kick misses)."""
    global _kicked_at
    moment = time.monotonic()
    if moment - _kicked_at < _KICK_INTERVAL:
        return
    _kicked_at = moment
    try:
        first = cache.add(_KICK_KEY, 1, timeout=1)
    except Exception:  # noqa: BLE001 - Redis away: the beat's periodic task sends it
        return
    if first:
        jobs.enqueue_on_commit(DELIVER_TASK)


# --- endpoints -----------------------------------------------------------------------------------------------------


def _subscriptions_changed(merchant_id: int) -> None:
    """Keep the merchant's `webhook_event_types` (what event_emit reads first) equal to its active endpoints'."""
    types: set[str] = set()
    for events in WebhookEndpoint.objects.filter(merchant_id=merchant_id, is_active=True).values_list(
        "events", flat=True
    ):
        types.update(events)
    Merchant.objects.filter(pk=merchant_id).update(webhook_event_types=sorted(types))


def _private_address(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return False  # not resolvable now: nothing to judge (the delivery will fail and retry)
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            return True
    return False


def validate_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 500:
        raise InvalidInput(details={"url": "An http(s) address of at most 500 characters."})
    if settings.WEBHOOK_REQUIRE_HTTPS and parts.scheme != "https":
        raise InvalidInput(details={"url": "The address must start with https://."}, code="HTTPS_REQUIRED")
    if parts.username or parts.password:
        raise InvalidInput(details={"url": "No user name or password in the address."})
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES and _private_address(parts.hostname):
        raise InvalidInput(
            details={"url": "The address points into a private network; use a public one."}, code="PRIVATE_ADDRESS"
        )
    return url


def validate_events(events: list[str]) -> list[str]:
    chosen = [event for event in SUBSCRIBABLE if event in set(events or [])]
    unknown = set(events or []) - set(SUBSCRIBABLE)
    if unknown or not chosen:
        raise InvalidInput(details={"events": "Choose one or more of: " + ", ".join(SUBSCRIBABLE)})
    return chosen


def endpoint_create(
    *, merchant: Merchant, url: str, events: list[str], description: str = "", user: AbstractBaseUser | None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned once, in clear; stored encrypted)."""
    url, events = validate_url(url), validate_events(events)
    secret = new_secret()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            merchant=merchant, url=url, events=events, description=description[:100], secret=secret, created_by=user
        )
        _subscriptions_changed(merchant.pk)
        audit_record(actor=user, action="webhook.create", obj=merchant, details={"endpoint": endpoint.pk, "url": url})
    return endpoint, secret


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str,
    events: list[str],
    description: str,
    is_active: bool,
    user: AbstractBaseUser | None,
) -> WebhookEndpoint:
    url, events = validate_url(url), validate_events(events)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = {"url": endpoint.url, "events": endpoint.events, "is_active": endpoint.is_active}
        endpoint.url, endpoint.events, endpoint.description, endpoint.is_active = (
            url, events, description[:100], is_active,
        )  # fmt: skip
        endpoint.save()
        _subscriptions_changed(endpoint.merchant_id)
        # What waits for a switched-off endpoint is not due (so the workers' claims never wade through it); switched
        # on again, it is due at once.
        pending = WebhookDelivery.objects.filter(endpoint=endpoint, status=WebhookDelivery.Status.PENDING)
        if before["is_active"] and not is_active:
            pending.update(next_attempt_at=None)
        elif is_active and not before["is_active"]:
            pending.filter(next_attempt_at__isnull=True).update(next_attempt_at=_now())
        after = {"url": url, "events": events, "is_active": is_active}
        changed = {key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]}
        audit_record(
            actor=user,
            action="webhook.update",
            obj=endpoint.merchant,
            details={"endpoint": endpoint.pk, "url": endpoint.url, "changed": changed},
        )
    if is_active:
        transaction.on_commit(kick)  # re-enabled: what waited is due
    return endpoint


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint, user: AbstractBaseUser | None) -> str:
    """A new secret, returned once. The old one keeps signing beside it for WEBHOOK_SECRET_OVERLAP_HOURS, so the
    receiver can switch without losing a delivery."""
    secret = new_secret()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        endpoint.previous_secret = endpoint.secret.reveal()
        endpoint.previous_secret_expires_at = _now() + timedelta(hours=settings.WEBHOOK_SECRET_OVERLAP_HOURS)
        endpoint.secret = secret
        endpoint.save()
        audit_record(
            actor=user,
            action="webhook.rotate_secret",
            obj=endpoint.merchant,
            details={
                "endpoint": endpoint.pk,
                "url": endpoint.url,
                "old_valid_until": endpoint.previous_secret_expires_at.isoformat(),
            },
        )
    return secret


def signing_secrets(
    endpoint: WebhookEndpoint, now: datetime | None = None, *, reveal: Callable[[Secret], str] = Secret.reveal
) -> list[str]:
    """The secrets a delivery is signed with now: the current one, then the previous one during its overlap.
    `reveal` decrypts one (the sender passes one that remembers what it decrypted)."""
    found = [reveal(endpoint.secret)]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > (now or _now())
    ):
        found.append(reveal(endpoint.previous_secret))
    return found


def endpoint_send_test(*, endpoint: WebhookEndpoint, user: AbstractBaseUser | None) -> WebhookEvent:
    """A `webhook.test` event to this endpoint only (active or not), sent like any other."""
    with transaction.atomic():
        event = _write_event(
            merchant_id=endpoint.merchant_id,
            type=EventType.TEST,
            data={"message": "Test event from the face-pay portal.", "endpoint_url": endpoint.url},
            order_key="",
            endpoint_ids=[endpoint.pk],
        )
        audit_record(
            actor=user,
            action="webhook.test",
            obj=endpoint.merchant,
            details={"endpoint": endpoint.pk, "url": endpoint.url, "event": event.event_id},
        )
    return event


# --- resending -----------------------------------------------------------------------------------------------------


def _requeue(rows, now: datetime) -> int:
    return rows.update(status=WebhookDelivery.Status.PENDING, retry_step=0, next_attempt_at=now, last_error="")


def delivery_resend(*, delivery: WebhookDelivery, user: AbstractBaseUser | None) -> WebhookDelivery:
    """Send a delivered or failed event again to its endpoint (same event id: the receiver may dedupe it)."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("endpoint__merchant", "event")
            .get(pk=delivery.pk)
        )
        if delivery.status == WebhookDelivery.Status.PENDING:
            raise InvalidState("This delivery is already waiting to be sent.", code="ALREADY_PENDING")
        _requeue(WebhookDelivery.objects.filter(pk=delivery.pk), _now())
        audit_record(
            actor=user,
            action="webhook.resend",
            obj=delivery.endpoint.merchant,
            details={"endpoint": delivery.endpoint_id, "url": delivery.endpoint.url, "event": delivery.event.event_id},
        )
        transaction.on_commit(kick)
    delivery.refresh_from_db()
    return delivery


def deliveries_resend_failed(*, endpoint: WebhookEndpoint, since: datetime, user: AbstractBaseUser | None) -> int:
    """Queue again every delivery to `endpoint` that failed and whose event was made at or after `since`."""
    with transaction.atomic():
        rows = WebhookDelivery.objects.filter(
            endpoint=endpoint, status=WebhookDelivery.Status.FAILED, event__created_at__gte=since
        )
        count = _requeue(WebhookDelivery.objects.filter(pk__in=list(rows.values_list("pk", flat=True))), _now())
        audit_record(
            actor=user,
            action="webhook.resend_failed",
            obj=endpoint.merchant,
            details={"endpoint": endpoint.pk, "url": endpoint.url, "since": since.isoformat(), "count": count},
        )
        if count:
            transaction.on_commit(kick)
    return count


def prune(*, now: datetime | None = None) -> int:
    """Delete events (with their deliveries and attempts) older than WEBHOOK_RETENTION_DAYS that nothing waits
    for. Returns the number of events deleted."""
    cutoff = (now or _now()) - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    old = WebhookEvent.objects.filter(created_at__lt=cutoff).exclude(deliveries__status=WebhookDelivery.Status.PENDING)
    deleted = 0
    while True:
        batch = list(old.values_list("pk", flat=True)[:1000])
        if not batch:
            return deleted
        WebhookEvent.objects.filter(pk__in=batch).delete()
        deleted += len(batch)

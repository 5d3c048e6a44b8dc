"""Reads for the console's webhook pages: every query scoped by role (`portal.selectors.scope_queryset`)."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.selectors import date_param, membership_of, scope_queryset

from .models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint

Status = WebhookDelivery.Status


def endpoints_visible_to(user) -> QuerySet[WebhookEndpoint]:
    return scope_queryset(WebhookEndpoint.objects.select_related("merchant"), user)


def deliveries_visible_to(user) -> QuerySet[WebhookDelivery]:
    """Deliveries of the endpoints `user` sees, with their event (the event's merchant is the endpoint's)."""
    return scope_queryset(
        WebhookDelivery.objects.select_related("event", "endpoint__merchant"), user, merchant_path="endpoint__merchant"
    )


def shows_merchant(user) -> bool:
    """Whether lists name each row's merchant: provider staff (and superusers) see several, a merchant's own staff
    one."""
    membership = membership_of(user)
    return membership is None or membership.is_provider_role


def _count_of(status: str) -> Coalesce:
    counted = (
        WebhookDelivery.objects.filter(endpoint=OuterRef("pk"), status=status)
        .order_by()
        .values("endpoint")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def with_delivery_summary(endpoints: QuerySet[WebhookEndpoint]) -> QuerySet[WebhookEndpoint]:
    """Each endpoint with `pending_count`, `failed_count` and `last_delivered_at` (when the newest delivered event
    arrived), each read per endpoint through the (endpoint, status, id) index."""
    newest_delivered = WebhookDelivery.objects.filter(endpoint=OuterRef("pk"), status=Status.DELIVERED).order_by("-id")
    return endpoints.annotate(
        pending_count=_count_of(Status.PENDING),
        failed_count=_count_of(Status.FAILED),
        last_delivered_at=Subquery(newest_delivered.values("delivered_at")[:1]),
    )


def event_labels(events: list[str]) -> list[str]:
    """The subscribed event types in words, in the order of EventType; an unknown stored value as it is."""
    labels = dict(EventType.choices)
    return [str(labels.get(value, value)) for value in events]


def previous_secret_until(endpoint: WebhookEndpoint) -> datetime | None:
    """Until when the secret from before the last rotation still signs beside the current one; None when it no
    longer does."""
    until = endpoint.previous_secret_expires_at
    return until if until and until > timezone.now() else None


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filter_deliveries(deliveries: QuerySet[WebhookDelivery], params) -> QuerySet[WebhookDelivery]:
    """The delivery log's filters (GET parameters status, type, from, to — dates in China time, inclusive), newest
    first; unknown or malformed values are ignored. The events' bodies are left unread."""
    if (status := params.get("status", "")) in Status.values:
        deliveries = deliveries.filter(status=status)
    if (event_type := params.get("type", "")) in EventType.values:
        deliveries = deliveries.filter(event__type=event_type)
    if start := date_param(params, "from"):
        deliveries = deliveries.filter(created_at__gte=_day_start(start))
    if end := date_param(params, "to"):
        deliveries = deliveries.filter(created_at__lt=_day_start(end + timedelta(days=1)))
    return deliveries.defer("event__body").order_by("-id")


def attempts_of(delivery: WebhookDelivery) -> QuerySet[WebhookAttempt]:
    return delivery.attempt_log.order_by("-number", "-id")


def pretty_body(body: str) -> str:
    """The event's JSON body indented for reading (as stored when it is not JSON)."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def datetime_param(params, name: str) -> datetime | None:
    """A form's date and time (`name`, e.g. 2026-03-10T08:00 as a datetime-local input sends it), read in the
    console's time zone (China time) unless it names its own; None when absent, malformed or out of range."""
    try:
        value = datetime.fromisoformat(params.get(name, "").strip())
    except ValueError:
        return None
    if not 2000 <= value.year <= 2100:
        return None
    return timezone.make_aware(value) if timezone.is_naive(value) else value

from __future__ import annotations

from django.db.models import QuerySet

from payments.models import Payment
from portal.errors import NotFound
from portal.models import Device
from portal.selectors import date_param, scope_queryset


def payment_for_device(*, device: Device, out_trade_no: str) -> Payment:
    """A terminal sees its merchant's orders (another terminal of the same store may ask about an order)."""
    try:
        return Payment.objects.select_related("merchant", "store", "device").get(
            merchant_id=device.store.merchant_id, out_trade_no=out_trade_no
        )
    except Payment.DoesNotExist:
        raise NotFound("No payment with this out_trade_no.", code="PAYMENT_NOT_FOUND") from None


def payments_visible_to(user) -> QuerySet[Payment]:
    return scope_queryset(Payment.objects.select_related("merchant", "store", "device"), user)


# --- console ---------------------------------------------------------------------------------------------------


PAID_STATUSES = ("SUCCESS", "PARTIALLY_REFUNDED", "REFUNDED")


def filter_payments(queryset: QuerySet[Payment], params) -> QuerySet[Payment]:
    """Apply the console's list filters (GET parameters); unknown or malformed values are ignored."""
    from datetime import datetime, time, timedelta

    from django.db.models import Q
    from django.utils import timezone

    tz = timezone.get_current_timezone()
    if start := date_param(params, "from"):
        queryset = queryset.filter(created_at__gte=datetime.combine(start, time.min, tz))
    if end := date_param(params, "to"):
        queryset = queryset.filter(created_at__lt=datetime.combine(end + timedelta(days=1), time.min, tz))
    for field in ("status", "channel", "method"):
        if value := params.get(field):
            queryset = queryset.filter(**{field: value})
    for field in ("store", "device"):
        if (value := params.get(field, "")).isdigit():
            queryset = queryset.filter(**{f"{field}_id": int(value)})
    if q := params.get("q", "").strip():
        queryset = queryset.filter(
            Q(out_trade_no__icontains=q) | Q(transaction_id=q) | Q(wallet_transaction_id=q) | Q(openid=q)
        )
    return queryset


def dashboard(user, *, days: int = 14) -> dict:
    """Volume and counts per day / channel / status for the last `days` days (China dates), today's totals, the
    success rate, and the queues a person must look at."""
    from datetime import timedelta

    from django.db.models import Count, Q, Sum
    from django.db.models.functions import TruncDate
    from django.utils import timezone

    payments = payments_visible_to(user)
    today = timezone.localdate()
    first_day = today - timedelta(days=days - 1)
    recent = payments.filter(created_at__date__gte=first_day)
    paid = Q(status__in=PAID_STATUSES)
    per_day = {
        row["day"]: row
        for row in recent.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(count=Count("id"), paid_count=Count("id", filter=paid), volume=Sum("total_fee", filter=paid))
    }
    series = []
    for offset in range(days):
        current = first_day + timedelta(days=offset)
        row = per_day.get(current, {})
        series.append(
            {
                "day": current,
                "count": row.get("count", 0),
                "paid_count": row.get("paid_count", 0),
                "volume": row.get("volume") or 0,
            }
        )
    by_channel_status = list(
        recent.values("channel", "status")
        .annotate(count=Count("id"), volume=Sum("total_fee"))
        .order_by("channel", "status")
    )
    settled = recent.filter(status__in=(*PAID_STATUSES, "FAILED", "REVERSED"))
    settled_count = settled.count()
    success_rate = (settled.filter(paid).count() * 100 // settled_count) if settled_count else None
    today_row = series[-1]
    return {
        "series": series,
        "max_volume": max((point["volume"] for point in series), default=0),
        "by_channel_status": by_channel_status,
        "today": today_row,
        "success_rate": success_rate,
        "attention": payments.filter(status="ATTENTION").order_by("created_at")[:50],
        "paying": payments.filter(status__in=("PAYING", "REVERSING")).order_by("created_at")[:50],
        "latest": payments.order_by("-created_at")[:10],
    }

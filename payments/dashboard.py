"""Reads for the console's dashboard: trends of paid amounts, refunds and success rates by day, week or month (China
dates), the period's top merchants and stores, its breakdown by channel and status, today's totals and the queues a
person must look at.

Everything is aggregated in the database, in a fixed number of queries whatever the number of payments, over what
the user may see (`payments_visible_to`, `refunds_visible_to`). Time ranges are `created_at` ranges, which its index
serves (a filter on `created_at__date` would wrap the column in a function and read every row)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, DateField, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from payments.models import Payment, PaymentStatus, Refund
from payments.selectors import payments_visible_to, refunds_visible_to, sees_many_merchants

PAID_STATUSES = (PaymentStatus.SUCCESS, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
# The outcomes a success rate divides by: paid, or definitely not (failed, reversed). Payments still paying or
# waiting for a person count in neither.
SETTLED_STATUSES = (*PAID_STATUSES, PaymentStatus.FAILED, PaymentStatus.REVERSED)

# A period → how its dates are truncated (weeks start on Monday, as ISO weeks) and how many of them a trend shows.
PERIODS = {"day": (TruncDay, 14), "week": (TruncWeek, 12), "month": (TruncMonth, 12)}

TOP = 10  # merchants and stores ranked
QUEUE_LIMIT = 50  # payments listed in each queue
LATEST = 10


@dataclass(kw_only=True)
class Figures:
    """Paid count and amount, refunded amount (fen; refunds that succeeded, counted when they were made), and the
    settled outcomes a success rate divides by."""

    paid_count: int = 0
    paid_amount: int = 0
    settled_count: int = 0
    refunded: int = 0

    @property
    def success_rate(self) -> int | None:
        """Paid in percent of settled outcomes, rounded down; None when none settled."""
        return self.paid_count * 100 // self.settled_count if self.settled_count else None

    def add(self, other: Figures) -> None:
        self.paid_count += other.paid_count
        self.paid_amount += other.paid_amount
        self.settled_count += other.settled_count
        self.refunded += other.refunded


@dataclass(kw_only=True)
class Bucket(Figures):
    """A day, a week (Monday to Sunday) or a month: `start` and `last` are its first and last China dates."""

    start: date
    last: date


@dataclass(kw_only=True)
class Ranked(Figures):
    """A merchant or a store among the period's top ones; a store also has its code and its merchant's name."""

    pk: int
    name: str
    code: str = ""
    merchant: str = ""


def _payment_figures() -> dict:
    paid = Q(status__in=PAID_STATUSES)
    return {
        "paid_count": Count("id", filter=paid),
        "paid_amount": Coalesce(Sum("total_fee", filter=paid), 0),
        "settled_count": Count("id", filter=Q(status__in=SETTLED_STATUSES)),
    }


def _figures(row: dict, refunded: int = 0) -> dict:
    return {
        "paid_count": row["paid_count"],
        "paid_amount": row["paid_amount"],
        "settled_count": row["settled_count"],
        "refunded": refunded or 0,
    }


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def _period_start(period: str, day: date) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def _shift(period: str, start: date, count: int) -> date:
    """The start of the period `count` periods after (or before, when negative) the one starting on `start`."""
    if period == "day":
        return start + timedelta(days=count)
    if period == "week":
        return start + timedelta(weeks=count)
    months = start.year * 12 + start.month - 1 + count
    return date(months // 12, months % 12 + 1, 1)


def trends(user, period: str, *, today: date | None = None) -> dict:
    """The last 14 days, 12 weeks or 12 months up to today (China dates): each one's figures (`buckets`, oldest
    first), their `totals`, the top merchants (for those who see many; None for a merchant's own staff) and top
    stores, and the payments by channel and status, with their display names."""
    trunc, count = PERIODS[period]
    china = timezone.get_default_timezone()
    current = _period_start(period, today or timezone.localdate(timezone=china))
    starts = [_shift(period, current, -offset) for offset in reversed(range(count))]
    window = {"created_at__gte": _midnight(starts[0]), "created_at__lt": _midnight(_shift(period, current, 1))}
    payments = payments_visible_to(user).filter(**window)
    refunds = refunds_visible_to(user).filter(status=Refund.Status.SUCCESS, **window)

    def bucket(field: str):
        return trunc(field, output_field=DateField(), tzinfo=china)

    buckets = {start: Bucket(start=start, last=_shift(period, start, 1) - timedelta(days=1)) for start in starts}
    # One pass over the period's payments by bucket, channel and status (a few hundred rows at most): the trend and
    # the breakdown both add up from it.
    kinds: dict[tuple[str, str], dict] = {}
    for row in payments.values("channel", "status", bucket=bucket("created_at")).annotate(
        count=Count("id"), amount=Sum("total_fee")
    ):
        figures = buckets[row["bucket"]]
        if row["status"] in PAID_STATUSES:
            figures.paid_count += row["count"]
            figures.paid_amount += row["amount"]
        if row["status"] in SETTLED_STATUSES:
            figures.settled_count += row["count"]
        kind = kinds.setdefault((row["channel"], row["status"]), {"count": 0, "amount": 0})
        kind["count"] += row["count"]
        kind["amount"] += row["amount"]
    for row in refunds.values(bucket=bucket("created_at")).annotate(amount=Sum("refund_fee")):
        buckets[row["bucket"]].refunded = row["amount"]
    totals = Figures()
    for figures in buckets.values():
        totals.add(figures)
    channels = dict(Payment._meta.get_field("channel").choices)
    statuses = dict(PaymentStatus.choices)
    by_channel_status = [
        {
            "channel": channel,
            "status": status,
            "channel_label": channels.get(channel, channel),
            "status_label": statuses.get(status, status),
            **kind,
        }
        for (channel, status), kind in sorted(kinds.items())
    ]
    return {
        "period": period,
        "buckets": list(buckets.values()),
        "totals": totals,
        "merchants": _ranked(payments, refunds, "merchant", ("merchant__name",)) if sees_many_merchants(user) else None,
        "stores": _ranked(payments, refunds, "store", ("store__name", "store__store_id", "merchant__name")),
        "by_channel_status": by_channel_status,
    }


def _ranked(payments: QuerySet[Payment], refunds: QuerySet[Refund], key: str, names: tuple[str, ...]) -> list[Ranked]:
    """The TOP merchants or stores (`key`) by paid amount, with the refunds of their payments made in the period."""
    rows = list(
        payments.values(key, *names).annotate(**_payment_figures()).order_by("-paid_amount", "-paid_count", key)[:TOP]
    )
    if not rows:
        return []
    refunded = dict(
        refunds.filter(**{f"payment__{key}__in": [row[key] for row in rows]})
        .values(f"payment__{key}")
        .annotate(amount=Sum("refund_fee"))
        .values_list(f"payment__{key}", "amount")
    )
    return [
        Ranked(
            pk=row[key],
            name=row[names[0]],
            code=row.get("store__store_id", ""),
            merchant=row["merchant__name"] if key == "store" else "",
            **_figures(row, refunded.get(row[key])),
        )
        for row in rows
    ]


def live(user, *, today: date | None = None) -> dict:
    """What changes by the second: today's figures (China date) and count of payments made, the payments waiting for
    a person (ATTENTION) and for an outcome (PAYING, REVERSING), oldest first, and the latest payments."""
    payments = payments_visible_to(user)
    today = today or timezone.localdate(timezone=timezone.get_default_timezone())
    row = payments.filter(
        created_at__gte=_midnight(today), created_at__lt=_midnight(today + timedelta(days=1))
    ).aggregate(count=Count("id"), **_payment_figures())
    return {
        "today": Figures(**_figures(row)),
        "today_count": row["count"],
        "attention": payments.filter(status=PaymentStatus.ATTENTION).order_by("created_at")[:QUEUE_LIMIT],
        "paying": payments.filter(status__in=(PaymentStatus.PAYING, PaymentStatus.REVERSING)).order_by("created_at")[
            :QUEUE_LIMIT
        ],
        "latest": payments.order_by("-created_at")[:LATEST],
    }

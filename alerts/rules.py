"""The alert rules: each a function of the moment that reads what it watches and returns its findings, every
finding with the key that makes it an alert once (docs/alerts.md, "Rules"). `evaluate` runs them all; the beat
calls it every ALERT_EVALUATE_SECONDS.

A rule finds what is true now, not what changed since the last run, so a missed or failed run loses nothing: the
next one finds the same, and the keys of what was already raised keep it from being raised twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db.models import CharField, Count, Exists, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from payments.models import UNSETTLED_PAYMENT_STATUSES, Payment, PaymentEvent, PaymentStatus, Refund
from payments.platform_certificates import platform_key_status
from portal.models import ChannelCredentials, Device, Merchant, Presence
from reconciliation.models import Difference, DifferenceKind

from . import services
from .models import Alert, Rule, Severity
from .services import Finding
from .text import CHINA

logger = logging.getLogger(__name__)

_BATCH = 500  # findings of one kind per run (the rest are found by the next run)
UPSTREAM_ERROR_OUTCOMES = ("TRANSIENT", "UNKNOWN")  # payments.gateways.base.Outcome: failed or unanswered calls


def _not_raised(prefix: str) -> Exists:
    """For a queryset of payments, refunds, …: no alert exists with the key `prefix` + the row's id."""
    key = Concat(Value(prefix), Cast(OuterRef("pk"), output_field=CharField()))
    return ~Exists(Alert.objects.filter(key=key))


def _raised(keys: list[str]) -> set[str]:
    return set(Alert.objects.filter(key__in=keys).values_list("key", flat=True)) if keys else set()


def _bucket(now: datetime, minutes: int) -> int:
    """The number of the `minutes`-long period `now` falls in: a threshold rule alerts once per period."""
    return int(now.timestamp() // (minutes * 60))


def payments_in_attention(now: datetime) -> list[Finding]:
    """A payment in ATTENTION not yet alerted. One settled before a run saw it is not alerted."""
    payments = (
        Payment.objects.filter(status=PaymentStatus.ATTENTION)
        .filter(_not_raised("attention:payment:"))
        .select_related("merchant", "store")
        .order_by("created_at")[:_BATCH]
    )
    return [
        Finding(
            rule=Rule.PAYMENT_ATTENTION,
            severity=Severity.CRITICAL,
            key=f"attention:payment:{payment.pk}",
            topic=f"{Rule.PAYMENT_ATTENTION}:merchant:{payment.merchant_id}",
            merchant=payment.merchant,
            data={
                "payment": payment.pk,
                "out_trade_no": payment.out_trade_no,
                "amount": payment.total_fee,
                "store": payment.store.name,
                "code": payment.err_code,
            },
        )
        for payment in payments
    ]


def refunds_in_attention(now: datetime) -> list[Finding]:
    """A refund in ATTENTION not yet alerted (a person must check it with the channel)."""
    refunds = (
        Refund.objects.filter(status=Refund.Status.ATTENTION)
        .filter(_not_raised("attention:refund:"))
        .select_related("payment__merchant")
        .order_by("created_at")[:_BATCH]
    )
    return [
        Finding(
            rule=Rule.REFUND_ATTENTION,
            severity=Severity.WARNING,
            key=f"attention:refund:{refund.pk}",
            topic=f"{Rule.REFUND_ATTENTION}:merchant:{refund.payment.merchant_id}",
            merchant=refund.payment.merchant,
            data={
                "payment": refund.payment_id,
                "refund": refund.pk,
                "out_refund_no": refund.out_refund_no,
                "out_trade_no": refund.payment.out_trade_no,
                "amount": refund.refund_fee,
                "code": refund.err_code,
            },
        )
        for refund in refunds
    ]


def is_open(opens: time, closes: time, moment: time) -> bool:
    """Whether a store with these hours is open at `moment` (all China time): equal hours are all day, a closing
    time before the opening time is past midnight."""
    if opens == closes:
        return True
    if opens < closes:
        return opens <= moment < closes
    return moment >= opens or moment < closes


def devices_offline(now: datetime) -> list[Finding]:
    """An enabled terminal of an open store offline (not seen for DEVICE_OFFLINE_AFTER_SECONDS) once the store has
    been open ALERT_OFFLINE_AFTER_OPENING_MINUTES, China time; once per offline spell (the key holds the moment it
    was last seen). Stores without opening hours, and devices never seen, are not watched."""
    local = now.astimezone(CHINA)
    settled_in = local - timedelta(minutes=settings.ALERT_OFFLINE_AFTER_OPENING_MINUTES)
    devices = (
        Device.objects.presence(Presence.OFFLINE, now)
        .filter(
            is_active=True,
            store__is_active=True,
            store__opens_at__isnull=False,
            store__merchant__status=Merchant.Status.ACTIVE,
        )
        .select_related("store__merchant")
        .order_by("pk")
    )
    found = []
    for device in devices:
        store = device.store
        if not (
            is_open(store.opens_at, store.closes_at, local.time())
            and is_open(store.opens_at, store.closes_at, settled_in.time())
        ):
            continue
        found.append(
            Finding(
                rule=Rule.DEVICE_OFFLINE,
                severity=Severity.WARNING,
                key=f"offline:device:{device.pk}:{int(device.last_seen_at.timestamp())}",
                topic=f"{Rule.DEVICE_OFFLINE}:merchant:{store.merchant_id}",
                merchant=store.merchant,
                data={
                    "device": device.pk,
                    "device_id": device.device_id,
                    "store": store.name,
                    "store_pk": store.pk,
                    "last_seen_at": device.last_seen_at.isoformat(),
                    "opens_at": store.opens_at.strftime("%H:%M"),
                    "closes_at": store.closes_at.strftime("%H:%M"),
                },
            )
        )
    raised = _raised([finding.key for finding in found])
    return [finding for finding in found if finding.key not in raised][:_BATCH]


def failure_rates(now: datetime) -> list[Finding]:
    """A merchant with at least ALERT_FAILURE_RATE_MIN_PAYMENTS payments made in the last
    ALERT_FAILURE_RATE_WINDOW_MINUTES and settled, of which ALERT_FAILURE_RATE_PERCENT % or more FAILED; once per
    window-long period."""
    minutes = settings.ALERT_FAILURE_RATE_WINDOW_MINUTES
    rows = (
        Payment.objects.filter(created_at__gte=now - timedelta(minutes=minutes))
        .exclude(status__in=UNSETTLED_PAYMENT_STATUSES)
        .values("merchant_id")
        .annotate(total=Count("pk"), failed=Count("pk", filter=Q(status=PaymentStatus.FAILED)))
        .filter(total__gte=settings.ALERT_FAILURE_RATE_MIN_PAYMENTS)
        .order_by()
    )
    over = {
        row["merchant_id"]: row
        for row in rows
        if row["failed"] * 100 >= settings.ALERT_FAILURE_RATE_PERCENT * row["total"]
    }
    bucket = _bucket(now, minutes)
    keys = {pk: f"failure_rate:merchant:{pk}:{bucket}" for pk in over}
    raised = _raised(list(keys.values()))
    merchants = Merchant.objects.in_bulk([pk for pk, key in keys.items() if key not in raised])
    return [
        Finding(
            rule=Rule.FAILURE_RATE,
            severity=Severity.WARNING,
            key=keys[pk],
            topic=f"{Rule.FAILURE_RATE}:merchant:{pk}",
            merchant=merchant,
            data={
                "failed": over[pk]["failed"],
                "total": over[pk]["total"],
                "percent": over[pk]["failed"] * 100 // over[pk]["total"],
                "minutes": minutes,
            },
        )
        for pk, merchant in sorted(merchants.items())
    ]


def upstream_errors(now: datetime) -> list[Finding]:
    """A channel's calls (WeChat Pay direct, WeChat Pay service provider, UMF) that failed or went unanswered at
    least ALERT_UPSTREAM_ERRORS_THRESHOLD times in the last ALERT_UPSTREAM_ERRORS_WINDOW_MINUTES, counted per
    provider (over all its merchants) — per merchant for a merchant without one; once per window-long period."""
    minutes = settings.ALERT_UPSTREAM_ERRORS_WINDOW_MINUTES
    rows = (
        PaymentEvent.objects.filter(
            created_at__gte=now - timedelta(minutes=minutes), outcome__in=UPSTREAM_ERROR_OUTCOMES
        )
        .values("payment__channel", "payment__merchant__provider_id", "payment__merchant_id")
        .annotate(count=Count("pk"))
        .order_by()
    )
    counts: dict[tuple[int | None, int | None, str], int] = defaultdict(int)
    for row in rows:
        provider_id = row["payment__merchant__provider_id"]
        merchant_id = None if provider_id else row["payment__merchant_id"]
        counts[(provider_id, merchant_id, row["payment__channel"])] += row["count"]
    bucket = _bucket(now, minutes)
    found = {}
    for (provider_id, merchant_id, channel), count in counts.items():
        if count < settings.ALERT_UPSTREAM_ERRORS_THRESHOLD:
            continue
        subject = f"provider:{provider_id}" if provider_id else f"merchant:{merchant_id}"
        found[f"upstream_errors:{subject}:{channel}:{bucket}"] = (provider_id, merchant_id, channel, count, subject)
    raised = _raised(list(found))
    merchants = Merchant.objects.in_bulk([merchant_id for _p, merchant_id, *_rest in found.values() if merchant_id])
    return [
        Finding(
            rule=Rule.UPSTREAM_ERRORS,
            severity=Severity.CRITICAL,
            key=key,
            topic=f"{Rule.UPSTREAM_ERRORS}:{subject}:{channel}",
            merchant=merchants.get(merchant_id),
            provider_id=provider_id,
            data={"channel": channel, "count": count, "minutes": minutes},
        )
        for key, (provider_id, merchant_id, channel, count, subject) in sorted(found.items())
        if key not in raised
    ]


def reconciliation_differences(now: datetime) -> list[Finding]:
    """Open differences of the last ALERT_RECONCILIATION_DAYS bill days, batched: one alert per merchant, day and
    bill that found them (a later bill of the same day that finds more makes another). A difference explained or
    closed before a run saw it is not alerted."""
    since = now.astimezone(CHINA).date() - timedelta(days=settings.ALERT_RECONCILIATION_DAYS)
    rows = (
        Difference.objects.filter(status=Difference.Status.OPEN, bill_date__gte=since)
        .values("merchant_id", "bill_date", "first_bill_id", "kind")
        .annotate(count=Count("pk"))
        .order_by()
    )
    groups: dict[tuple[int, str, int], dict[str, int]] = defaultdict(dict)
    for row in rows:
        groups[(row["merchant_id"], row["bill_date"].isoformat(), row["first_bill_id"] or 0)][row["kind"]] = row[
            "count"
        ]
    keys = {group: f"reconciliation:merchant:{group[0]}:{group[1]}:bill:{group[2]}" for group in groups}
    raised = _raised(list(keys.values()))
    fresh = {group: key for group, key in keys.items() if key not in raised}
    merchants = Merchant.objects.in_bulk({merchant_id for merchant_id, _day, _bill in fresh})
    return [
        Finding(
            rule=Rule.RECONCILIATION,
            severity=Severity.CRITICAL if DifferenceKind.CHARGED_NOT_SUCCESSFUL in groups[group] else Severity.WARNING,
            key=key,
            topic=f"{Rule.RECONCILIATION}:merchant:{group[0]}",
            merchant=merchants[group[0]],
            data={"bill_date": group[1], "count": sum(groups[group].values()), "kinds": groups[group]},
        )
        for group, key in sorted(fresh.items())
    ][:_BATCH]


def platform_keys(now: datetime) -> list[Finding]:
    """The WeChat Pay platform keys of a provider or direct merchant need a person (payments.platform_certificates,
    `platform_key_status`): in certificate mode the newest platform certificate expires within
    PLATFORM_CERTIFICATE_WARN_DAYS — once per certificate —, or downloading them has failed for two refresh periods —
    once per China day while it fails. For the credentials' owner: the provider (its staff and robots), or the
    direct merchant."""
    rows = (
        ChannelCredentials.objects.exclude(wechat_platform_certificates="", wechat_platform_keys_error="")
        .select_related("provider", "merchant")
        .order_by("pk")
    )
    day = now.astimezone(CHINA).date().isoformat()
    found = []
    for credentials in rows:
        status = platform_key_status(credentials, now)
        if not status.warning_due:
            continue
        if credentials.provider_id:
            subject, owner = f"provider:{credentials.provider_id}", credentials.provider
        else:
            subject, owner = f"merchant:{credentials.merchant_id}", credentials.merchant
        data = {"owner": subject.split(":")[0], "owner_pk": owner.pk, "name": owner.name}
        if status.expiring is not None:
            certificate = status.expiring
            key = f"platform_keys:expiring:credentials:{credentials.pk}:{certificate.serial}"
            data |= {
                "kind": "expiring",
                "serial": certificate.serial,
                "valid_until": certificate.valid_until.isoformat(),
                "days_left": certificate.days_left,
            }
        else:
            key = f"platform_keys:failing:credentials:{credentials.pk}:{day}"
            since = status.failing_since
            data |= {"kind": "failing", "code": status.error_code, "since": since.isoformat() if since else None}
        found.append(
            Finding(
                rule=Rule.PLATFORM_KEYS,
                severity=Severity.WARNING,
                key=key,
                topic=f"{Rule.PLATFORM_KEYS}:{subject}",
                merchant=credentials.merchant if credentials.merchant_id else None,
                provider_id=credentials.provider_id,
                data=data,
            )
        )
    raised = _raised([finding.key for finding in found])
    return [finding for finding in found if finding.key not in raised][:_BATCH]


RULES = (
    payments_in_attention,
    refunds_in_attention,
    devices_offline,
    failure_rates,
    upstream_errors,
    reconciliation_differences,
    platform_keys,
)


def evaluate(*, now: datetime | None = None) -> int:
    """Run every rule and raise what it finds; returns the number of alerts raised. A rule that fails is logged and
    the others run (the next evaluation tries it again)."""
    now = now or timezone.now()
    raised = 0
    for rule in RULES:
        try:
            findings = rule(now)
        except Exception:  # noqa: BLE001 - one rule's failure must not silence the others
            logger.exception("alerts: rule %s failed", rule.__name__)
            continue
        for finding in findings:
            if services.alert_raise(finding, now=now) is not None:
                raised += 1
    return raised

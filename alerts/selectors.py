"""Reads for the console's alert pages, every one scoped by role: provider staff see their provider's alerts (its
merchants' and its own), a merchant's staff their merchant's; robots likewise, for the admins who manage them."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery

from portal.models import Merchant, ServiceProvider
from portal.selectors import membership_of

from .models import Alert, AlertChannel, AlertDelivery, AlertRead, Rule, Severity


def _is_superuser(user) -> bool:
    return user is not None and user.is_authenticated and user.is_superuser


def alerts_visible_to(user) -> QuerySet[Alert]:
    if _is_superuser(user):
        return Alert.objects.all()
    membership = membership_of(user)
    if membership is None:
        return Alert.objects.none()
    if membership.is_provider_role:
        return Alert.objects.filter(provider_id=membership.provider_id)
    return Alert.objects.filter(merchant_id=membership.merchant_id)


def with_read(alerts: QuerySet[Alert], user) -> QuerySet[Alert]:
    return alerts.annotate(is_read=Exists(AlertRead.objects.filter(alert=OuterRef("pk"), user=user)))


def unread_count(user) -> int:
    """One COUNT over the user's alerts (an indexed column) without a read mark of theirs."""
    return (
        alerts_visible_to(user)
        .exclude(Exists(AlertRead.objects.filter(alert=OuterRef("pk"), user=user)))
        .order_by()
        .count()
    )


def channels_visible_to(user) -> QuerySet[AlertChannel]:
    channels = AlertChannel.objects.select_related("provider", "merchant")
    if _is_superuser(user):
        return channels
    membership = membership_of(user)
    if membership is None:
        return channels.none()
    if membership.is_provider_role:
        return channels.filter(Q(provider_id=membership.provider_id) | Q(merchant__provider_id=membership.provider_id))
    return channels.filter(merchant_id=membership.merchant_id)


def with_last_delivery(channels: QuerySet[AlertChannel]) -> QuerySet[AlertChannel]:
    """Each robot with `last_sent_at` and its newest failure (`last_failed_at`, `last_error`)."""
    sent = AlertDelivery.objects.filter(channel=OuterRef("pk"), status=AlertDelivery.Status.SENT).order_by("-id")
    failed = AlertDelivery.objects.filter(channel=OuterRef("pk"), status=AlertDelivery.Status.FAILED).order_by("-id")
    return channels.annotate(
        last_sent_at=Subquery(sent.values("sent_at")[:1]),
        last_failed_at=Subquery(failed.values("last_attempt_at")[:1]),
        last_error=Subquery(failed.values("last_error")[:1]),
    )


def owner_choices(user) -> list[tuple[str, str, Merchant | ServiceProvider]]:
    """Whose alerts a robot the user makes may carry: (value, label, owner). A provider's admins: the provider's
    (all its merchants') or one merchant's; a merchant's admins: their merchant's."""
    if _is_superuser(user):
        providers = list(ServiceProvider.objects.order_by("name"))
        merchants = list(Merchant.objects.order_by("name"))
    else:
        membership = membership_of(user)
        if membership is None:
            return []
        if membership.is_provider_role:
            providers = [membership.provider]
            merchants = list(Merchant.objects.filter(provider_id=membership.provider_id).order_by("name"))
        else:
            providers, merchants = [], [membership.merchant]
    return [(f"provider:{p.pk}", p.name, p) for p in providers] + [(f"merchant:{m.pk}", m.name, m) for m in merchants]


def shows_merchant(user) -> bool:
    """Whether lists name each row's merchant and filter by it: provider staff and superusers see several."""
    membership = membership_of(user)
    return _is_superuser(user) or (membership is not None and membership.is_provider_role)


@dataclass
class AlertFilters:
    rule: str = ""
    severity: int | None = None
    read: str = ""  # "unread", "read" or ""
    merchant: Merchant | None = None


def parse_filters(user, params) -> AlertFilters:
    """The alert list's filters (GET rule, severity, read, merchant); unknown values are ignored, and a merchant
    only one the user sees."""
    filters = AlertFilters()
    if (rule := params.get("rule", "")) in Rule.values:
        filters.rule = rule
    if (severity := params.get("severity", "")).isdigit() and int(severity) in Severity.values:
        filters.severity = int(severity)
    if (read := params.get("read", "")) in ("unread", "read"):
        filters.read = read
    if (merchant := params.get("merchant", "")).isdigit() and shows_merchant(user):
        merchants = Merchant.objects.all()
        membership = membership_of(user)
        if membership is not None:
            merchants = merchants.filter(provider_id=membership.provider_id)
        filters.merchant = merchants.filter(pk=int(merchant)).first()
    return filters


def filter_alerts(alerts: QuerySet[Alert], filters: AlertFilters) -> QuerySet[Alert]:
    """`alerts` (annotated `with_read`) narrowed by the filters, newest first."""
    if filters.rule:
        alerts = alerts.filter(rule=filters.rule)
    if filters.severity is not None:
        alerts = alerts.filter(severity=filters.severity)
    if filters.read:
        alerts = alerts.filter(is_read=filters.read == "read")
    if filters.merchant is not None:
        alerts = alerts.filter(merchant=filters.merchant)
    return alerts.select_related("merchant", "provider").order_by("-id")


def merchants_for_filter(user) -> QuerySet[Merchant]:
    merchants = Merchant.objects.order_by("name")
    membership = membership_of(user)
    return merchants.filter(provider_id=membership.provider_id) if membership is not None else merchants


def deliveries_of(alert: Alert) -> QuerySet[AlertDelivery]:
    return alert.deliveries.select_related("channel").order_by("id")

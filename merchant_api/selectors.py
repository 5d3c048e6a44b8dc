"""Reads of the merchant API and its console page. Every API read starts from one merchant (the client's), so a token
never sees another merchant's rows; console reads are scoped by role (`portal.selectors.scope_queryset`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

from django.db.models import Prefetch, QuerySet

from payments.models import Payment, PaymentEvent, Refund
from portal.errors import NotFound
from portal.models import Merchant
from portal.selectors import scope_queryset
from reconciliation.models import Difference

from .models import MerchantApiClient


def active_client(*, application_id: int) -> MerchantApiClient | None:
    """The active API client of an OAuth2 application, with its merchant and service provider."""
    return (
        MerchantApiClient.objects.select_related("merchant__provider", "application")
        .filter(application_id=application_id, is_active=True)
        .first()
    )


def clients_visible_to(user) -> QuerySet[MerchantApiClient]:
    return scope_queryset(
        MerchantApiClient.objects.select_related("merchant", "application", "created_by"), user
    ).order_by("-is_active", "-created_at", "-id")


# --- payments ------------------------------------------------------------------------------------------------------


def payments_of(
    merchant: Merchant,
    *,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    statuses: Collection[str] = (),
    store_id: str = "",
    device_id: str = "",
) -> QuerySet[Payment]:
    """The merchant's payments, filtered: created in [created_after, created_before), in one of `statuses`, made in
    the store / on the device with that id."""
    payments = Payment.objects.filter(merchant=merchant).select_related("store", "device")
    if created_after is not None:
        payments = payments.filter(created_at__gte=created_after)
    if created_before is not None:
        payments = payments.filter(created_at__lt=created_before)
    if statuses:
        payments = payments.filter(status__in=statuses)
    if store_id:
        payments = payments.filter(store__store_id=store_id)
    if device_id:
        payments = payments.filter(device__device_id=device_id)
    return payments


def payment_with_history(merchant: Merchant, out_trade_no: str) -> Payment:
    """One payment of the merchant with its refunds (oldest first) and its events (the timeline)."""
    payment = (
        Payment.objects.filter(merchant=merchant, out_trade_no=out_trade_no)
        .select_related("store", "device")
        .prefetch_related(
            Prefetch("refunds", queryset=Refund.objects.order_by("created_at", "id")),
            Prefetch("events", queryset=PaymentEvent.objects.select_related("refund").order_by("created_at", "id")),
        )
        .first()
    )
    if payment is None:
        raise NotFound("No payment with this out_trade_no.", code="PAYMENT_NOT_FOUND")
    return payment


def payment_of(merchant: Merchant, out_trade_no: str) -> Payment:
    payment = Payment.objects.filter(merchant=merchant, out_trade_no=out_trade_no).first()
    if payment is None:
        raise NotFound("No payment with this out_trade_no.", code="PAYMENT_NOT_FOUND")
    return payment


def refund_of(merchant: Merchant, out_refund_no: str) -> Refund:
    refund = (
        Refund.objects.filter(payment__merchant=merchant, out_refund_no=out_refund_no).select_related("payment").first()
    )
    if refund is None:
        raise NotFound("No refund with this out_refund_no.", code="REFUND_NOT_FOUND")
    return refund


# --- reconciliation ------------------------------------------------------------------------------------------------


def differences_of(
    merchant: Merchant,
    *,
    bill_date_from: date | None = None,
    bill_date_to: date | None = None,
    kinds: Collection[str] = (),
    statuses: Collection[str] = (),
) -> QuerySet[Difference]:
    """The merchant's reconciliation differences, filtered: bill day in [bill_date_from, bill_date_to], of one of
    `kinds`, in one of `statuses`."""
    differences = Difference.objects.filter(merchant=merchant)
    if bill_date_from is not None:
        differences = differences.filter(bill_date__gte=bill_date_from)
    if bill_date_to is not None:
        differences = differences.filter(bill_date__lte=bill_date_to)
    if kinds:
        differences = differences.filter(kind__in=kinds)
    if statuses:
        differences = differences.filter(status__in=statuses)
    return differences

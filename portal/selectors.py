"""Reads shared by views, APIs and later apps — above all the role scoping every console query goes through."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from portal.models import AuditLog, ChannelCredentials, Device, Merchant, StaffMembership, Store


def membership_of(user) -> StaffMembership | None:
    if user is None or not user.is_authenticated:
        return None
    try:
        return user.membership
    except StaffMembership.DoesNotExist:
        return None


def scope_queryset(queryset: QuerySet, user, merchant_path: str = "merchant") -> QuerySet:
    """Restrict any queryset to what `user` may see.

    `merchant_path` is the lookup from the queryset's model to Merchant ("merchant", "store__merchant", or "" for
    Merchant itself). Platform superusers see everything; provider staff see their provider's merchants; merchant
    staff see their own merchant; anyone else sees nothing.
    """
    if user is not None and user.is_authenticated and user.is_superuser:
        return queryset
    membership = membership_of(user)
    if membership is None:
        return queryset.none()
    prefix = f"{merchant_path}__" if merchant_path else ""
    if membership.is_provider_role:
        return queryset.filter(**{f"{prefix}provider_id": membership.provider_id})
    return queryset.filter(**{f"{prefix}pk" if not merchant_path else f"{merchant_path}_id": membership.merchant_id})


def date_param(params, name: str):
    """A console filter's date (GET parameter `name`, YYYY-MM-DD), or None when absent, malformed or beyond what a
    search can use (a date field lets people type 9999-12-31)."""
    from datetime import date

    try:
        value = date.fromisoformat(params.get(name, ""))
    except ValueError:
        return None
    return value if date(2000, 1, 1) <= value <= date(2100, 12, 31) else None


def merchants_visible_to(user) -> QuerySet[Merchant]:
    return scope_queryset(Merchant.objects.select_related("provider"), user, merchant_path="")


def stores_visible_to(user) -> QuerySet[Store]:
    return scope_queryset(Store.objects.select_related("merchant"), user)


def devices_visible_to(user) -> QuerySet[Device]:
    return scope_queryset(Device.objects.select_related("store__merchant"), user, merchant_path="store__merchant")


def signing_credentials_for(merchant: Merchant) -> ChannelCredentials | None:
    """The credentials that sign this merchant's upstream calls: its own when it is a direct WeChat merchant,
    its provider's in service-provider (sub_mch_id) and UMF mode."""
    owner = (
        Q(merchant=merchant)
        if merchant.channel == Merchant.Channel.WECHAT_DIRECT
        else Q(provider_id=merchant.provider_id)
    )
    try:
        return ChannelCredentials.objects.get(owner)  # one owner has at most one row (one-to-one)
    except ChannelCredentials.DoesNotExist:
        return None


def audit_visible_to(user) -> QuerySet[AuditLog]:
    """Provider staff see their provider's entries and their merchants'; merchant staff their merchant's."""
    if user is not None and user.is_authenticated and user.is_superuser:
        return AuditLog.objects.all()
    membership = membership_of(user)
    if membership is None:
        return AuditLog.objects.none()
    if membership.is_provider_role:
        return AuditLog.objects.filter(
            Q(provider_id=membership.provider_id) | Q(merchant__provider_id=membership.provider_id)
        )
    return AuditLog.objects.filter(merchant_id=membership.merchant_id)

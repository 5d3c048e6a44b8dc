"""Reads shared by views, APIs and later apps — above all the role scoping every console query goes through."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from portal.models import AuditLog, ChannelCredentials, Device, Merchant, Presence, StaffMembership, Store


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


def works_across_merchants(user) -> bool:
    """Superusers and provider staff: their device list shows and filters by merchant; a merchant's staff see
    their own merchant only."""
    if user is not None and user.is_authenticated and user.is_superuser:
        return True
    membership = membership_of(user)
    return membership is not None and membership.is_provider_role


@dataclass
class DeviceFilters:
    """The device list's filters as parsed from its GET parameters; with `errors` the list shows nothing rather
    than a set filtered otherwise than asked."""

    merchant: Merchant | None = None
    store: Store | None = None
    presence: str = ""  # a Presence value
    sdk_version: str = ""
    prefix: str = ""  # the beginning of a device number or name
    errors: list[str] = field(default_factory=list)


def parse_device_filters(user, params) -> DeviceFilters:
    """merchant (for those who work across merchants), store (of the chosen merchant), status (a Presence value),
    sdk (a version exactly), q (a prefix). Ids are looked up among what `user` may see only: a foreign id is an
    error, never a filter."""
    filters = DeviceFilters()
    if (text := params.get("merchant", "").strip()) and works_across_merchants(user):
        filters.merchant = merchants_visible_to(user).filter(pk=int(text)).first() if text.isdigit() else None
        if filters.merchant is None:
            filters.errors.append(_("Choose the merchant from the list."))
    if text := params.get("store", "").strip():
        stores = stores_visible_to(user)
        if filters.merchant is not None:
            stores = stores.filter(merchant=filters.merchant)
        filters.store = stores.filter(pk=int(text)).first() if text.isdigit() else None
        if filters.store is None:
            filters.errors.append(_("Choose the store from the list (the chosen merchant's stores)."))
    if text := params.get("status", "").strip():
        if text in Presence.values:
            filters.presence = text
        else:
            filters.errors.append(_("%(field)s: choose a value from the list.") % {"field": _("Status")})
    filters.sdk_version = params.get("sdk", "").strip()
    filters.prefix = params.get("q", "").strip()
    return filters


def filter_devices(queryset: QuerySet[Device], filters: DeviceFilters, now: datetime) -> QuerySet[Device]:
    """`queryset` narrowed by the device list's filters, presence as at `now`."""
    if filters.merchant is not None:
        queryset = queryset.filter(store__merchant=filters.merchant)
    if filters.store is not None:
        queryset = queryset.filter(store=filters.store)
    if filters.presence:
        queryset = queryset.presence(filters.presence, now)
    if filters.sdk_version:
        queryset = queryset.filter(sdk_version=filters.sdk_version)
    if filters.prefix:
        queryset = queryset.filter(Q(device_id__istartswith=filters.prefix) | Q(name__istartswith=filters.prefix))
    return queryset


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

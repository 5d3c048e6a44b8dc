"""Reads of the members domain. Every staff-facing read starts from `members_visible_to` (role scoping)."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.db.models import Model, Q, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from members.models import ERASED_PREFIX, Member, MemberEvent
from payments.models import Payment
from payments.selectors import ListFilters, parse_filters
from portal.selectors import scope_queryset


def members_visible_to(user) -> QuerySet[Member]:
    return scope_queryset(Member.objects.select_related("merchant"), user)


def member_events_visible_to(user) -> QuerySet[MemberEvent]:
    return scope_queryset(
        MemberEvent.objects.select_related("member", "store", "device"), user, merchant_path="member__merchant"
    )


def member_events(member: Member) -> QuerySet[MemberEvent]:
    return MemberEvent.objects.filter(member=member).select_related("store", "device")


def member_by_openid(*, merchant_id: int, openid: str) -> Member | None:
    return Member.objects.select_related("merchant").filter(merchant_id=merchant_id, openid=openid).first()


def _service_order_model() -> type[Model] | None:
    """payscore.ServiceOrder when that app and model exist (they are built separately), else None."""
    if not apps.is_installed("payscore"):
        return None
    try:
        model = apps.get_model("payscore", "ServiceOrder")
    except LookupError:
        return None
    names = {field.name for field in model._meta.get_fields()}
    return model if {"merchant", "openid"} <= names else None


@dataclass(frozen=True)
class MemberHistory:
    payments: QuerySet  # payments.Payment of the same merchant and openid, newest first
    payscore_orders: QuerySet | None  # payscore.ServiceOrder likewise; None when PayScore is not available


def member_history(member: Member) -> MemberHistory:
    """The member's payments and PayScore orders, linked by (merchant, openid). An erased member has none: its
    openid is gone, so the link is too. Callers scope `member` first (members_visible_to); the history shares its
    merchant, so it needs no further scoping."""
    service_order = _service_order_model()
    if member.is_anonymised:
        return MemberHistory(
            payments=Payment.objects.none(),
            payscore_orders=service_order.objects.none() if service_order else None,
        )
    payments = Payment.objects.filter(merchant_id=member.merchant_id, openid=member.openid).select_related("store")
    orders = None
    if service_order is not None:
        orders = service_order.objects.filter(merchant_id=member.merchant_id, openid=member.openid).order_by("-pk")
    return MemberHistory(payments=payments.order_by("-created_at", "-id"), payscore_orders=orders)


# --- the console's list --------------------------------------------------------------------------------------------

# Its yes/no selects, by parameter, with the name the page gives them.
YES_NO_FILTERS = {"activated": gettext_lazy("Member card"), "erased": gettext_lazy("Personal data")}
MEMBER_NUMBER_DIGITS = 18  # a member number longer than this is no member's (and no 64-bit integer)


def parse_member_filters(user, params) -> ListFilters:
    """The members list's filters, read as the payments list's (payments.selectors.parse_filters): merchant (for
    those who see many), start and end (of the last visit, China time), q; and activated and erased (yes / no). A
    member has no store and no amount: those parameters are not read."""
    filters = parse_filters(
        user, {name: params.get(name, "") for name in ("merchant", "start", "end", "q")}, choices={}
    )
    for name, label in YES_NO_FILTERS.items():
        if value := params.get(name, "").strip():
            if value in ("yes", "no"):
                filters.choices[name] = value
            else:
                filters.errors.append(_("%(field)s: choose a value from the list.") % {"field": label})
    return filters


def filter_members(queryset: QuerySet[Member], filters: ListFilters) -> QuerySet[Member]:
    """The members list's filters. `q` is a member number (123 or #123), or a whole openid, sub_openid or unionid,
    or part of the nickname; an erased member is found by its number only (its placeholder openid is no one's)."""
    if filters.merchant is not None:
        queryset = queryset.filter(merchant_id=filters.merchant.pk)
    if filters.start is not None:
        queryset = queryset.filter(last_seen_at__gte=filters.start)
    if filters.end is not None:
        queryset = queryset.filter(last_seen_at__lt=filters.end)
    if "activated" in filters.choices:
        queryset = queryset.filter(card_activated=filters.choices["activated"] == "yes")
    if "erased" in filters.choices:
        queryset = queryset.filter(anonymised_at__isnull=filters.choices["erased"] == "no")
    if q := filters.prefix:
        found = (Q(openid=q) | Q(sub_openid=q) | Q(unionid=q) | Q(nickname__icontains=q)) & ~Q(
            openid__startswith=ERASED_PREFIX
        )
        number = q.removeprefix("#")
        if number.isascii() and number.isdigit() and len(number) <= MEMBER_NUMBER_DIGITS:
            found |= Q(pk=int(number))
        queryset = queryset.filter(found)
    return queryset


def members_for_export(queryset: QuerySet[Member]) -> QuerySet[Member]:
    """Only the columns an export writes (the list's: no sub_openid or unionid)."""
    return queryset.only(
        "nickname", "openid", "visit_count", "first_seen_at", "last_seen_at", "card_activated", "activated_at",
        "anonymised_at", "anonymised_reason", "merchant__name",
    )  # fmt: skip

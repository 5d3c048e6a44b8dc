"""Reads of the members domain. Every staff-facing read starts from `members_visible_to` (role scoping)."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.db.models import Model, QuerySet

from members.models import Member, MemberEvent
from payments.models import Payment
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

"""Reads for the console's reconciliation pages: every query scoped by role (`portal.selectors.scope_queryset`)."""

from __future__ import annotations

from django.db.models import Max, QuerySet

from portal.selectors import date_param, membership_of, merchants_visible_to, scope_queryset

from .models import DayResult, Difference, DifferenceKind


def days_visible_to(user) -> QuerySet[DayResult]:
    return scope_queryset(DayResult.objects.select_related("merchant"), user)


def differences_visible_to(user) -> QuerySet[Difference]:
    return scope_queryset(Difference.objects.select_related("merchant", "explained_by"), user)


def merchant_filter_choices(user) -> QuerySet | None:
    """The merchants a list may be filtered by: provider staff (and superusers) pick among theirs; a merchant's own
    staff see one merchant and get no filter."""
    membership = membership_of(user)
    if membership is not None and not membership.is_provider_role:
        return None
    return merchants_visible_to(user).order_by("name")


def filter_days(queryset: QuerySet, params) -> QuerySet:
    """Filter days or differences by bill date and merchant (GET parameters: from, to, merchant); malformed values
    are ignored."""
    if start := date_param(params, "from"):
        queryset = queryset.filter(bill_date__gte=start)
    if end := date_param(params, "to"):
        queryset = queryset.filter(bill_date__lte=end)
    if (merchant := params.get("merchant", "")).isdigit():
        queryset = queryset.filter(merchant_id=int(merchant))
    return queryset


def filter_differences(queryset: QuerySet[Difference], params) -> QuerySet[Difference]:
    """The queue's filters: those of `filter_days`, and status (OPEN when absent, any when empty), kind and q (part
    of the 商户订单号); unknown or malformed values are ignored."""
    queryset = filter_days(queryset, params)
    status = params.get("status", Difference.Status.OPEN)
    if status in Difference.Status.values:
        queryset = queryset.filter(status=status)
    if (kind := params.get("kind", "")) in DifferenceKind.values:
        queryset = queryset.filter(kind=kind)
    if q := params.get("q", "").strip():
        queryset = queryset.filter(out_trade_no__icontains=q)
    return queryset


def compared_amounts(difference: Difference) -> tuple[int | None, int | None]:
    """(ours, theirs) in fen for the amount the match compares: the order amount (订单金额), or for a refund the
    amount asked (申请退款金额); None for a side without a record."""
    ours, theirs = difference.ours or {}, difference.theirs or {}
    if difference.refund_no:
        return ours.get("refund_fee"), theirs.get("requested_refund_fee")
    return ours.get("total_fee"), theirs.get("total_fee")


def dashboard(user) -> dict:
    """The dashboard's card: the last reconciled day and the open differences the user can see."""
    return {
        "last_day": days_visible_to(user).aggregate(last=Max("bill_date"))["last"],
        "open_differences": differences_visible_to(user).filter(status=Difference.Status.OPEN).count(),
    }

"""Reads of PayScore service orders. Staff-facing reads start from `service_orders_visible_to` (role scoping)."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from payments.selectors import ListFilters, filter_common
from payscore.models import PayscoreNotification, ServiceOrder, ServiceOrderEvent
from portal.errors import NotFound
from portal.models import Device
from portal.selectors import scope_queryset


def service_order_for_device(*, device: Device, out_order_no: str) -> ServiceOrder:
    """A terminal sees its merchant's service orders (another terminal of the merchant may complete an order)."""
    order = (
        ServiceOrder.objects.select_related("merchant", "store", "device")
        .filter(merchant_id=device.store.merchant_id, out_order_no=out_order_no)
        .first()
    )
    if order is None:
        raise NotFound("No service order with this out_order_no.", code="SERVICE_ORDER_NOT_FOUND")
    return order


def service_orders_visible_to(user) -> QuerySet[ServiceOrder]:
    return scope_queryset(ServiceOrder.objects.select_related("merchant", "store", "device"), user)


def service_order_events(order: ServiceOrder) -> QuerySet[ServiceOrderEvent]:
    """The order's timeline, oldest first (callers scope `order` first)."""
    return ServiceOrderEvent.objects.filter(service_order=order).select_related("actor_user")


def payscore_notifications_visible_to(user) -> QuerySet[PayscoreNotification]:
    return scope_queryset(PayscoreNotification.objects.select_related("merchant", "service_order"), user)


# --- the console's list (its filters are payments.selectors.parse_filters, as the payments list's) -----------------

SERVICE_ORDER_CHOICES = {"state": ServiceOrder.State.values}


def filter_service_orders(queryset: QuerySet[ServiceOrder], filters: ListFilters) -> QuerySet[ServiceOrder]:
    """The PayScore list's filters. The amount range is of the total the merchant completed the order with (an order
    not yet completed has none, and is left out when a range is given); `q` is the beginning of the order number or
    of WeChat's order id (`startswith`, as the payments list), or a whole openid."""
    queryset = filter_common(queryset, filters, merchant="merchant", fee="total_amount")
    if filters.device is not None:
        queryset = queryset.filter(device_id=filters.device.pk)
    if q := filters.prefix:
        queryset = queryset.filter(Q(out_order_no__startswith=q) | Q(order_id__startswith=q) | Q(openid=q))
    return queryset


def service_order_totals(queryset: QuerySet[ServiceOrder]) -> dict[str, int]:
    """Count, total (sum of the completed totals) and collected (sum of paid_amount) of a filtered set, in fen."""
    return queryset.aggregate(
        count=Count("id"), total=Coalesce(Sum("total_amount"), 0), collected=Coalesce(Sum("paid_amount"), 0)
    )


def service_orders_for_export(queryset: QuerySet[ServiceOrder]) -> QuerySet[ServiceOrder]:
    """Only the columns an export writes."""
    return queryset.only(
        "out_order_no", "order_id", "created_at", "updated_at", "state", "state_description", "collection_state",
        "service_introduction", "risk_fund", "total_amount", "paid_amount", "transaction_ids", "openid",
        "last_error_code", "merchant__name", "store__store_id", "store__name", "device__device_id",
    )  # fmt: skip

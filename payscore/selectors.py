"""Reads of PayScore service orders. Staff-facing reads start from `service_orders_visible_to` (role scoping)."""

from __future__ import annotations

from django.db.models import QuerySet

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

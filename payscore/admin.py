"""Django admin for PayScore service orders, their events and raw notifications. Rows are written only by the
services, so everything here is read-only; actions go through the audited services (refresh from WeChat).
Non-superusers see only what `scope_queryset` allows."""

from __future__ import annotations

from django.contrib import admin, messages

from payscore import services
from payscore.models import PayscoreNotification, ServiceOrder, ServiceOrderEvent
from portal.admin import ReadOnlyAdmin
from portal.errors import DomainError


class ServiceOrderEventInline(admin.TabularInline):
    model = ServiceOrderEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "action", "outcome", "from_state", "to_state", "code", "message", "actor", "actor_user"]
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ServiceOrder)
class ServiceOrderAdmin(ReadOnlyAdmin):
    list_display = [
        "out_order_no",
        "merchant",
        "store",
        "state",
        "state_description",
        "collection_state",
        "total_amount",
        "paid_amount",
        "pending_action",
        "created_at",
    ]
    list_filter = ["state", "state_description", "collection_state", "pending_action", "need_user_confirm", "merchant"]
    search_fields = ["=out_order_no", "=order_id", "=openid", "=union_id", "=transaction_ids"]
    date_hierarchy = "created_at"
    list_select_related = ["merchant", "store"]
    readonly_fields = [field.name for field in ServiceOrder._meta.fields]
    inlines = [ServiceOrderEventInline]
    actions = ["refresh_from_wechat"]

    @admin.action(description="Refresh from WeChat (query; audited)")
    def refresh_from_wechat(self, request, queryset):
        for order in queryset:
            try:
                services.service_order_refresh(
                    order_id=order.pk, actor=ServiceOrderEvent.Actor.STAFF, user=request.user
                )
            except DomainError as exc:
                self.message_user(request, f"{order.out_order_no}: {exc.code} {exc.message}", messages.ERROR)
        self.message_user(request, f"Refreshed {queryset.count()} service order(s).")


@admin.register(ServiceOrderEvent)
class ServiceOrderEventAdmin(ReadOnlyAdmin):
    scope_path = "service_order__merchant"
    list_display = ["created_at", "service_order", "action", "outcome", "from_state", "to_state", "code", "actor"]
    list_filter = ["action", "outcome", "actor"]
    search_fields = ["=service_order__out_order_no", "code"]
    list_select_related = ["service_order"]
    readonly_fields = [field.name for field in ServiceOrderEvent._meta.fields]


@admin.register(PayscoreNotification)
class PayscoreNotificationAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "event_type", "claimed_id", "is_verified", "http_status", "service_order", "result"]
    list_filter = ["event_type", "is_verified", "http_status"]
    search_fields = ["=claimed_id", "=notification_id", "=service_order__out_order_no"]
    readonly_fields = [field.name for field in PayscoreNotification._meta.fields]

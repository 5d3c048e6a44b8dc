"""Django admin for payments, refunds, their events and UMF's raw notifications: read-only (the services write
these rows; staff act through the console, where every action is audited), scoped like the console."""

from __future__ import annotations

from django.contrib import admin

from payments.models import Payment, PaymentEvent, Refund, UmpayNotification
from portal.admin import ReadOnlyAdmin


class PaymentEventInline(admin.TabularInline):
    model = PaymentEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "action", "outcome", "from_status", "to_status", "code", "message", "latency_ms", "actor"]
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = ["out_refund_no", "kind", "refund_fee", "status", "err_code", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ["out_trade_no", "merchant", "store", "channel", "method", "total_fee", "status", "created_at"]
    list_filter = ["status", "channel", "method", "wallet", "merchant"]
    search_fields = ["=out_trade_no", "=transaction_id"]
    date_hierarchy = "created_at"
    list_select_related = ["merchant", "store"]
    readonly_fields = [field.name for field in Payment._meta.fields]
    inlines = [RefundInline, PaymentEventInline]


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    scope_path = "payment__merchant"
    list_display = ["out_refund_no", "payment", "kind", "refund_fee", "status", "created_at"]
    list_filter = ["status", "kind"]
    search_fields = ["=out_refund_no", "=payment__out_trade_no"]
    date_hierarchy = "created_at"
    list_select_related = ["payment"]
    readonly_fields = [field.name for field in Refund._meta.fields]


@admin.register(PaymentEvent)
class PaymentEventAdmin(ReadOnlyAdmin):
    scope_path = "payment__merchant"
    list_display = ["created_at", "payment", "action", "outcome", "from_status", "to_status", "code", "actor"]
    list_filter = ["action", "outcome", "actor"]
    search_fields = ["=payment__out_trade_no", "code"]
    list_select_related = ["payment"]
    readonly_fields = [field.name for field in PaymentEvent._meta.fields]


@admin.register(UmpayNotification)
class UmpayNotificationAdmin(ReadOnlyAdmin):
    """Raw notifications are not tied to a merchant until applied: platform superusers only."""

    list_display = ["received_at", "order_no", "is_verified", "processed_at", "result", "remote_addr"]
    list_filter = ["is_verified"]
    search_fields = ["=order_no"]
    readonly_fields = [field.name for field in UmpayNotification._meta.fields]

    def get_queryset(self, request):
        queryset = admin.ModelAdmin.get_queryset(self, request)
        return queryset if request.user.is_superuser else queryset.none()

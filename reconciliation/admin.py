"""Django admin for bills, day results, differences and carried orders: read-only (the services write them; staff
explain differences through the services, which audit it), scoped like the console."""

from __future__ import annotations

from django.contrib import admin

from portal.admin import ReadOnlyAdmin
from reconciliation.models import Bill, CarriedOrder, DayResult, Difference


@admin.register(Bill)
class BillAdmin(ReadOnlyAdmin):
    list_display = ["bill_date", "merchant", "bill_type", "version", "status", "source", "rows", "created_at"]
    list_filter = ["status", "source", "channel"]
    search_fields = ["sha256", "merchant__name"]
    exclude = ["content_gzip"]


@admin.register(DayResult)
class DayResultAdmin(ReadOnlyAdmin):
    list_display = ["bill_date", "merchant", "rows", "matched", "open_differences", "carried", "fee_total"]
    date_hierarchy = "bill_date"


@admin.register(Difference)
class DifferenceAdmin(ReadOnlyAdmin):
    list_display = ["bill_date", "merchant", "kind", "out_trade_no", "refund_no", "status", "explained_by"]
    list_filter = ["status", "kind"]
    search_fields = ["out_trade_no", "refund_no", "transaction_id"]


@admin.register(CarriedOrder)
class CarriedOrderAdmin(ReadOnlyAdmin):
    list_display = ["bill_date", "merchant", "payment", "refund", "reason", "settled_on"]

"""Console pages for payments (session login); included by portal/urls.py in the "portal" namespace."""

from django.urls import path

from payments import views

urlpatterns = [
    path("payments/", views.payment_list, name="payment_list"),
    path("payments/export.csv", views.payment_export, name="payment_export"),
    path("payments/export.xlsx", views.payment_export_xlsx, name="payment_export_xlsx"),
    path("payments/filter-places", views.filter_places, name="payment_filter_places"),
    path("payments/<int:pk>/", views.payment_detail, name="payment_detail"),
    path("payments/<int:pk>/refund", views.payment_refund, name="payment_refund"),
    path("payments/<int:pk>/reverse", views.payment_reverse, name="payment_reverse"),
    path("payments/<int:pk>/refresh", views.payment_refresh, name="payment_refresh"),
    path("payments/<int:pk>/resolve", views.payment_resolve_attention, name="payment_resolve"),
    path(
        "payments/<int:pk>/refunds/<int:refund_pk>/resolve",
        views.refund_resolve_attention,
        name="refund_resolve",
    ),
    path("payments/<int:pk>/status", views.payment_status_fragment, name="payment_status"),
    path("refunds/", views.refund_list, name="refund_list"),
    path("refunds/export.csv", views.refund_export, name="refund_export"),
    path("refunds/export.xlsx", views.refund_export_xlsx, name="refund_export_xlsx"),
    path("attention/", views.attention_list, name="attention_list"),
]

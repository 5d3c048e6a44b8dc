"""The merchant API's routes (`/api/merchant/v1/`), included by portal/urls.py."""

from django.urls import path

from merchant_api import api

v1 = [
    path("oauth/token", api.TokenApi.as_view(), name="token"),
    path("payments", api.PaymentListApi.as_view(), name="payment-list"),
    path("payments/<str:out_trade_no>", api.PaymentDetailApi.as_view(), name="payment-detail"),
    path("payments/<str:out_trade_no>/refunds", api.RefundCreateApi.as_view(), name="refund-create"),
    path("refunds/<str:out_refund_no>", api.RefundDetailApi.as_view(), name="refund-detail"),
    path("reconciliation/differences", api.DifferenceListApi.as_view(), name="difference-list"),
]

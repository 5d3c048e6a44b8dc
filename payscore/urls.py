"""Included by portal/urls.py: `terminal_v1` under /api/terminal/v1/, `notify` under /notify/."""

from django.urls import path

from payscore import api, notifications

terminal_v1 = [
    path("payscore/orders", api.ServiceOrderCreateApi.as_view(), name="payscore-order-create"),
    path("payscore/orders/<str:out_order_no>", api.ServiceOrderDetailApi.as_view(), name="payscore-order-detail"),
    path(
        "payscore/orders/<str:out_order_no>/complete",
        api.ServiceOrderCompleteApi.as_view(),
        name="payscore-order-complete",
    ),
    path(
        "payscore/orders/<str:out_order_no>/cancel", api.ServiceOrderCancelApi.as_view(), name="payscore-order-cancel"
    ),
    path("payscore/orders/<str:out_order_no>/sync", api.ServiceOrderSyncApi.as_view(), name="payscore-order-sync"),
]

notify = [
    path("wechatpay/payscore/", notifications.payscore_notification, name="notify-wechatpay-payscore"),
]

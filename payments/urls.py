from django.urls import path

from payments import api, notifications
from portal.api import waiting_view

terminal_v1 = [
    path("face/authinfo", api.AuthinfoApi.as_view(), name="face-authinfo"),
    # Async: a terminal waiting for its payment's outcome costs a coroutine, not a thread (portal.api.waiting_view).
    path("payments", waiting_view(api.PaymentCreateApi), name="payment-create"),
    path("payments/<str:out_trade_no>", waiting_view(api.PaymentDetailApi), name="payment-detail"),
    path("payments/<str:out_trade_no>/cancel", api.PaymentCancelApi.as_view(), name="payment-cancel"),
]

staff_v1 = [
    path("payments/<int:payment_id>/refunds", api.StaffRefundCreateApi.as_view(), name="staff-refund-create"),
]

notify = [
    path("umpay/", notifications.umpay_notification, name="notify-umpay"),
]

from django.urls import path

from payments import api, notifications

terminal_v1 = [
    path("face/authinfo", api.AuthinfoApi.as_view(), name="face-authinfo"),
    path("payments", api.PaymentCreateApi.as_view(), name="payment-create"),
    path("payments/<str:out_trade_no>", api.PaymentDetailApi.as_view(), name="payment-detail"),
    path("payments/<str:out_trade_no>/cancel", api.PaymentCancelApi.as_view(), name="payment-cancel"),
]

staff_v1 = [
    path("payments/<int:payment_id>/refunds", api.StaffRefundCreateApi.as_view(), name="staff-refund-create"),
]

notify = [
    path("umpay/", notifications.umpay_notification, name="notify-umpay"),
]

"""Mounted at /sandbox/ (portal/urls.py, only when SANDBOX_ENABLED allows). Paths mirror the real services under
the bases the product's settings use: WECHATPAY_API_BASE=/sandbox/wechatpay, WECHATPAY_FACE_API_BASE=
/sandbox/wechatpay-face, UMPAY_API_BASE=/sandbox/umpay."""

from django.urls import path

from . import robots, views_terminal, views_umpay, views_v2, views_v3, views_v3_certificates, views_v3_pay

app_name = "sandbox"

urlpatterns = [
    # WeChat Pay API v2
    path("wechatpay-face/face/get_wxpayface_authinfo", views_v2.get_wxpayface_authinfo, name="wx_face_authinfo"),
    path("wechatpay/pay/micropay", views_v2.micropay, name="wx_micropay"),
    path("wechatpay/pay/orderquery", views_v2.orderquery, name="wx_orderquery"),
    path("wechatpay/secapi/pay/reverse", views_v2.reverse, name="wx_reverse"),
    path("wechatpay/secapi/pay/refund", views_v2.refund, name="wx_refund"),
    path("wechatpay/pay/refundquery", views_v2.refundquery, name="wx_refundquery"),
    path("wechatpay/pay/downloadbill", views_v2.downloadbill, name="wx_downloadbill"),
    # WeChat Pay API v3
    path("wechatpay/v3/payscore/serviceorder", views_v3.serviceorder, name="wx_payscore"),
    path(
        "wechatpay/v3/payscore/serviceorder/<str:out_order_no>/<str:action>",
        views_v3.serviceorder_action,
        name="wx_payscore_action",
    ),
    path("wechatpay/v3/facemch/users/<str:face_sid>", views_v3.facemch_user, name="wx_facemch_user"),
    path("wechatpay/v3/pay/transactions/codepay", views_v3_pay.codepay, name="wx_v3_codepay"),
    path(
        "wechatpay/v3/pay/transactions/out-trade-no/<str:out_trade_no>",
        views_v3_pay.query,
        name="wx_v3_query",
    ),
    path(
        "wechatpay/v3/pay/transactions/out-trade-no/<str:out_trade_no>/reverse",
        views_v3_pay.reverse,
        name="wx_v3_reverse",
    ),
    path("wechatpay/v3/pay/partner/transactions/codepay", views_v3_pay.partner_codepay, name="wx_v3_partner_codepay"),
    path(
        "wechatpay/v3/pay/partner/transactions/out-trade-no/<str:out_trade_no>",
        views_v3_pay.partner_query,
        name="wx_v3_partner_query",
    ),
    path(
        "wechatpay/v3/pay/partner/transactions/out-trade-no/<str:out_trade_no>/reverse",
        views_v3_pay.partner_reverse,
        name="wx_v3_partner_reverse",
    ),
    path("wechatpay/v3/refund/domestic/refunds", views_v3_pay.refunds, name="wx_v3_refunds"),
    path(
        "wechatpay/v3/refund/domestic/refunds/<str:out_refund_no>",
        views_v3_pay.refund_query,
        name="wx_v3_refund_query",
    ),
    path("wechatpay/v3/certificates", views_v3_certificates.certificates, name="wx_v3_certificates"),
    path("wechatpay/v3/bill/tradebill", views_v3.tradebill, name="wx_tradebill"),
    path("wechatpay/v3/billdownload/file", views_v3.billdownload, name="wx_billdownload"),
    # UMF
    path("umpay/pay/wxface", views_umpay.wxface, name="umpay_wxface"),
    path("umpay/pay/micropay", views_umpay.micropay, name="umpay_micropay"),
    path("umpay/pay/queryOrder", views_umpay.query_order, name="umpay_query_order"),
    path("umpay/pay/cancelOrder", views_umpay.cancel_order, name="umpay_cancel_order"),
    path("umpay/pay/refund", views_umpay.refund, name="umpay_refund"),
    path("umpay/pay/refundQuery", views_umpay.refund_query, name="umpay_refund_query"),
    # Chat robots (the alerts' WeCom and DingTalk group robots) and what they received
    path("wecom-robot/<str:key>", robots.wecom_robot, name="wecom_robot"),
    path("dingtalk-robot", robots.dingtalk_robot, name="dingtalk_robot"),
    path("robots/messages", robots.robot_messages, name="robot_messages"),
    # Face SDK stand-in for the terminal simulator
    path("terminal/rawdata", views_terminal.rawdata, name="terminal_rawdata"),
    path("terminal/face_code", views_terminal.face_code, name="terminal_face_code"),
    path("terminal/payment_code", views_terminal.payment_code, name="terminal_payment_code"),
]

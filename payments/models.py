"""Face-pay and payment-code orders, their refunds, the append-only event log, and raw upstream notifications.

Money is integer fen everywhere (BigIntegerField). Every state change goes through `payments.services` under a row
lock and writes an event (docs/architecture.md, "Payment states").
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from portal.models import Device, Merchant, Store


class PaymentStatus(models.TextChoices):
    PAYING = "PAYING", _("Paying (outcome not yet definite)")
    SUCCESS = "SUCCESS", _("Paid")
    FAILED = "FAILED", _("Failed (not charged)")
    REVERSING = "REVERSING", _("Reversing")
    REVERSED = "REVERSED", _("Reversed")
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED", _("Partially refunded")
    REFUNDED = "REFUNDED", _("Refunded")
    ATTENTION = "ATTENTION", _("Needs attention")


FINAL_PAYMENT_STATUSES = (PaymentStatus.FAILED, PaymentStatus.REVERSED, PaymentStatus.REFUNDED)
# Submitted with no definite outcome yet, or owing a reverse: what a waiting terminal waits for to end.
UNSETTLED_PAYMENT_STATUSES = (PaymentStatus.PAYING, PaymentStatus.REVERSING)


class Payment(models.Model):
    class Method(models.TextChoices):
        FACE = "FACE", _("Face (face_code)")
        CODE = "CODE", _("Payment code (付款码)")

    class Wallet(models.TextChoices):
        WECHAT = "WECHAT", _("WeChat Pay")
        ALIPAY = "ALIPAY", _("Alipay")
        UNIONPAY = "UNIONPAY", _("UnionPay")

    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="payments"
    )
    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="payments")
    device = models.ForeignKey(
        Device, verbose_name=_("device"), null=True, blank=True, on_delete=models.PROTECT, related_name="payments"
    )
    channel = models.CharField(
        _("channel"),
        max_length=16,
        choices=Merchant.Channel.choices,
        help_text="The merchant's channel when the order was made.",
    )
    method = models.CharField(_("method"), max_length=8, choices=Method.choices)
    wallet = models.CharField(
        _("wallet"),
        max_length=10,
        choices=Wallet.choices,
        default=Wallet.WECHAT,
        help_text="Whose payment code it was (UMF orderType).",
    )
    out_trade_no = models.CharField(_("order no."), max_length=32, help_text="out_trade_no (WeChat) / orderNo (UMF).")
    total_fee = models.BigIntegerField(_("amount (fen)"), help_text="Amount in fen: total_fee (WeChat) / txnAmt (UMF).")
    body = models.CharField(_("goods description"), max_length=128, help_text="body (WeChat) / goodsInfo (UMF).")
    attach = models.CharField(_("attach"), max_length=127, blank=True)
    openid = models.CharField(_("openid"), max_length=128, blank=True)
    auth_code_hint = models.CharField(
        _("payment code prefix"), max_length=12, blank=True, help_text="First digits of the code, for support."
    )
    request_fingerprint = models.CharField(
        _("request fingerprint"),
        max_length=64,
        help_text="SHA-256 of the order's content, to tell a retry from a conflicting reuse.",
    )
    status = models.CharField(_("status"), max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PAYING)
    err_code = models.CharField(_("error code"), max_length=64, blank=True)
    err_message = models.CharField(_("error message"), max_length=255, blank=True)
    transaction_id = models.CharField(
        _("transaction id"),
        max_length=64,
        blank=True,
        help_text="Upstream order id: transaction_id (WeChat) / transactionId (UMF).",
    )
    wallet_transaction_id = models.CharField(
        _("wallet transaction id"),
        max_length=64,
        blank=True,
        help_text="UMF depBankSeq: the wallet's own transaction id.",
    )
    order_time = models.CharField(
        _("UMF order time"), max_length=14, blank=True, help_text="yyyyMMddHHmmss (China time) sent as UMF orderTime."
    )
    refunded_fee = models.BigIntegerField(_("refunded (fen)"), default=0, help_text="Sum of successful refunds, fen.")
    reserved_refund_fee = models.BigIntegerField(
        _("reserved for refunds (fen)"),
        default=0,
        help_text="Sum of refunds not yet failed (pending + done), fen; never exceeds total_fee.",
    )
    # Resolution bookkeeping: query while unknown, then reverse; a sweeper re-drives whatever is overdue.
    submitted_at = models.DateTimeField(
        _("submitted at"), null=True, blank=True, help_text="When the payment call was sent."
    )
    next_check_at = models.DateTimeField(
        _("next check at"),
        null=True,
        blank=True,
        db_index=True,
        help_text="When a worker must look at this order next; null = settled.",
    )
    query_count = models.PositiveIntegerField(_("queries"), default=0)
    reverse_count = models.PositiveIntegerField(_("reverses"), default=0)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "out_trade_no"], name="payment_unique_out_trade_no"),
            models.CheckConstraint(name="payment_total_fee_positive", condition=Q(total_fee__gt=0)),
            models.CheckConstraint(
                name="payment_refunds_within_total",
                condition=Q(reserved_refund_fee__lte=F("total_fee"))
                & Q(refunded_fee__lte=F("reserved_refund_fee"))
                & Q(refunded_fee__gte=0),
            ),
            models.CheckConstraint(
                name="payment_out_trade_no_charset", condition=Q(out_trade_no__regex=r"^[0-9A-Za-z_\-|*]{1,32}$")
            ),
            models.UniqueConstraint(
                fields=["channel", "transaction_id"],
                condition=~Q(transaction_id=""),
                name="payment_unique_transaction_id",
            ),
        ]
        indexes = [
            models.Index(fields=["merchant", "status", "created_at"]),
            # The console's prefix search (startswith) on order numbers and channel ids: pattern indexes on
            # PostgreSQL (a plain index does not serve LIKE 'x%' under a non-C collation).
            models.Index(
                fields=["out_trade_no"], opclasses=["varchar_pattern_ops"], name="payment_out_trade_no_prefix"
            ),
            models.Index(
                fields=["transaction_id"], opclasses=["varchar_pattern_ops"], name="payment_transaction_id_prefix"
            ),
            # The attention queue, oldest first, and its count in the metrics (only the few ATTENTION rows).
            models.Index(fields=["created_at"], condition=Q(status="ATTENTION"), name="payment_attention"),
        ]

    def __str__(self) -> str:
        return f"{self.out_trade_no} {self.total_fee} {self.status}"


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", _("Recorded, not sent")
        PROCESSING = "PROCESSING", _("Accepted upstream, not done")
        SUCCESS = "SUCCESS", _("Refunded")
        FAILED = "FAILED", _("Failed (nothing refunded)")
        ATTENTION = "ATTENTION", _("Needs attention")

    class Kind(models.TextChoices):
        REVERSE = "REVERSE", _("Reverse (撤销)")
        REFUND = "REFUND", _("Refund API (退款)")

    payment = models.ForeignKey(Payment, verbose_name=_("payment"), on_delete=models.PROTECT, related_name="refunds")
    out_refund_no = models.CharField(
        _("refund no."),
        max_length=64,
        help_text="out_refund_no (WeChat) / orderNo (UMF): the payment's out_trade_no + R01, R02…, so unique per "
        "merchant like out_trade_no (two merchants may share an out_trade_no).",
    )
    refund_fee = models.BigIntegerField(_("amount (fen)"), help_text="fen")
    reason = models.CharField(_("reason"), max_length=80, blank=True)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PENDING)
    refund_id = models.CharField(_("channel refund id"), max_length=64, blank=True, help_text="Upstream refund id.")
    order_time = models.CharField(_("UMF order time"), max_length=14, blank=True)
    err_code = models.CharField(_("error code"), max_length=64, blank=True)
    err_message = models.CharField(_("error message"), max_length=255, blank=True)
    next_check_at = models.DateTimeField(_("next check at"), null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    request_key = models.CharField(
        _("request key"),
        max_length=64,
        blank=True,
        help_text="The requester's key for this refund (console confirmation, API request_key): the same key on the "
        "same payment is the same refund, never a second one.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(name="refund_fee_positive", condition=Q(refund_fee__gt=0)),
            models.UniqueConstraint(fields=["payment", "out_refund_no"], name="refund_number_per_payment"),
            models.UniqueConstraint(
                fields=["payment", "request_key"], condition=~Q(request_key=""), name="refund_request_key_once"
            ),
        ]
        indexes = [
            models.Index(
                fields=["out_refund_no"], opclasses=["varchar_pattern_ops"], name="refund_out_refund_no_prefix"
            ),
            models.Index(fields=["created_at"], name="refund_created_at"),
            models.Index(fields=["created_at"], condition=Q(status="ATTENTION"), name="refund_attention"),
        ]

    def __str__(self) -> str:
        return f"{self.out_refund_no} {self.refund_fee} {self.status}"


class PaymentEvent(models.Model):
    """Append-only: what was sent upstream, what came back, and every state change, with who did it."""

    class Actor(models.TextChoices):
        TERMINAL = "TERMINAL", _("Terminal")
        WORKER = "WORKER", _("Worker")
        STAFF = "STAFF", _("Staff")
        NOTIFICATION = "NOTIFICATION", _("Upstream notification")
        API = "API", _("Merchant API client")

    payment = models.ForeignKey(Payment, verbose_name=_("payment"), on_delete=models.CASCADE, related_name="events")
    refund = models.ForeignKey(
        Refund, verbose_name=_("refund"), null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    created_at = models.DateTimeField(_("time"), auto_now_add=True)
    action = models.CharField(
        _("action"), max_length=32, help_text="created, micropay, orderquery, reverse, refund, state, …"
    )
    outcome = models.CharField(
        _("outcome"), max_length=12, blank=True, help_text="SUCCESS / REJECTED / TRANSIENT / UNKNOWN"
    )
    from_status = models.CharField(_("from status"), max_length=20, blank=True)
    to_status = models.CharField(_("to status"), max_length=20, blank=True)
    code = models.CharField(_("code"), max_length=64, blank=True)
    message = models.CharField(_("message"), max_length=255, blank=True)
    request = models.JSONField(_("request"), default=dict, blank=True, help_text="Redacted request fields.")
    response = models.JSONField(_("response"), default=dict, blank=True, help_text="Redacted response fields.")
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), null=True, blank=True)
    actor = models.CharField(_("initiator"), max_length=12, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("payment event")
        verbose_name_plural = _("payment events")
        ordering = ["created_at", "id"]
        indexes = [
            # Upstream calls that failed or went unanswered, by time (the alerts' channel-error rule): only those
            # few rows are indexed, so the many ordinary events cost no index upkeep.
            models.Index(
                fields=["created_at"],
                condition=Q(outcome__in=["TRANSIENT", "UNKNOWN"]),
                name="payment_event_upstream_error",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.outcome} {self.from_status}->{self.to_status}"


class UmpayNotification(models.Model):
    """A UMF backUrl notification, stored raw before anything else (then verified and applied)."""

    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    body = models.TextField(_("body"))
    remote_addr = models.CharField(_("sender address"), max_length=64, blank=True)
    is_verified = models.BooleanField(_("signature verified"), default=False)
    order_no = models.CharField(_("order no."), max_length=64, blank=True, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    result = models.CharField(_("result"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("UMF notification")
        verbose_name_plural = _("UMF notifications")
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"UMF notification {self.order_no} {self.received_at:%Y-%m-%d %H:%M:%S}"

"""WeChat PayScore (支付分) service orders made at face-pay terminals, their append-only event log and
the raw PayScore notifications.

Money is integer fen (BigIntegerField). The order mirrors WeChat's service order (docs/protocols.md, "PayScore service
orders"); every change goes through `payscore.services` under a row lock and writes a ServiceOrderEvent.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from portal.models import Device, Merchant, Store

OUT_ORDER_NO_PATTERN = r"^[0-9A-Za-z_\-|*]{1,32}$"


class ServiceOrder(models.Model):
    class State(models.TextChoices):
        # Local: recorded, WeChat's answer to the create call not yet known.
        PENDING = "PENDING", _("Pending (not yet confirmed by WeChat)")
        # Local, final: WeChat definitely refused to create the order.
        REJECTED = "REJECTED", _("Refused by WeChat")
        # WeChat's states.
        CREATED = "CREATED", _("Created (awaiting the user)")
        DOING = "DOING", _("In service")
        DONE = "DONE", _("Done")
        REVOKED = "REVOKED", _("Cancelled by the merchant")
        EXPIRED = "EXPIRED", _("Expired (CREATED for 30 days)")

    class StateDescription(models.TextChoices):
        NONE = "", "—"
        USER_CONFIRM = "USER_CONFIRM", _("User confirmed")
        MCH_COMPLETE = "MCH_COMPLETE", _("Completed by the merchant")

    class Collection(models.TextChoices):
        NONE = "", "—"
        USER_PAYING = "USER_PAYING", _("Collecting")
        USER_PAID = "USER_PAID", pgettext_lazy("payscore collection", "Paid")

    class PendingAction(models.TextChoices):
        NONE = "", "—"
        CREATE = "CREATE", _("create")
        COMPLETE = "COMPLETE", _("complete")
        CANCEL = "CANCEL", _("cancel")
        SYNC = "SYNC", _("sync")

    class RiskFund(models.TextChoices):
        """risk_fund.name: what WeChat calls the amount the order may collect at most."""

        DEPOSIT = "DEPOSIT", _("Deposit")
        ADVANCE = "ADVANCE", _("Advance payment")
        CASH_DEPOSIT = "CASH_DEPOSIT", _("Cash deposit")
        ESTIMATE_ORDER_COST = "ESTIMATE_ORDER_COST", _("Estimated order cost")

    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="service_orders"
    )
    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="service_orders")
    # The terminal that created the order (sent as device.start_device_id) and the one that completed it (sent as
    # device.end_device_id; another store's terminal when, say, a power bank is returned elsewhere).
    device = models.ForeignKey(
        Device, verbose_name=_("device"), null=True, blank=True, on_delete=models.PROTECT, related_name="service_orders"
    )
    end_device = models.ForeignKey(
        Device,
        verbose_name=_("end device"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="completed_service_orders",
        help_text="The terminal whose complete took effect (device.end_device_id); empty when staff completed it.",
    )
    out_order_no = models.CharField(
        _("order no."),
        max_length=32,
        help_text="out_order_no; must equal the out_trade_no given to getUserPayScoreStatus.",
    )
    service_id = models.CharField(
        _("PayScore service_id"), max_length=32, help_text="service_id (the merchant's PayScore service)."
    )
    appid = models.CharField(
        _("WeChat appid"), max_length=32, blank=True, help_text="appid the order was created under."
    )
    openid = models.CharField(
        _("openid"), max_length=128, blank=True, help_text="openid (from the SDK, or WeChat's order)."
    )
    union_id = models.CharField(
        _("unionid"),
        max_length=128,
        blank=True,
        help_text="union_id from GET /v3/facemch/users/{face_sid} (ask_unionid).",
    )
    service_introduction = models.CharField(
        _("service introduction"), max_length=20, help_text="service_introduction (≤20 characters)."
    )
    post_payments = models.JSONField(
        _("post payments"), default=list, blank=True, help_text="post_payments (amounts in fen)."
    )
    post_discounts = models.JSONField(
        _("post discounts"), default=list, blank=True, help_text="post_discounts (amounts in fen)."
    )
    risk_fund = models.JSONField(_("risk fund"), default=dict, help_text="risk_fund {name, amount (fen), description}.")
    time_range = models.JSONField(_("time range"), default=dict, help_text="time_range {start_time, end_time}.")
    location = models.JSONField(
        _("location"), null=True, blank=True, help_text="location {start_location, end_location}."
    )
    attach = models.CharField(_("attach"), max_length=256, blank=True, help_text="attach (≤256).")
    need_user_confirm = models.BooleanField(
        _("needs the user's confirmation"), default=True, help_text="need_user_confirm."
    )
    notify_url = models.CharField(_("notification URL"), max_length=255, help_text="notify_url sent to WeChat.")
    order_id = models.CharField(
        _("WeChat order id"), max_length=64, blank=True, help_text="order_id: WeChat's service order number."
    )
    package = models.CharField(
        _("mini-program package"), max_length=300, blank=True, help_text="package (for the WeChat mini-program)."
    )
    state = models.CharField(_("status"), max_length=10, choices=State.choices, default=State.PENDING)
    state_description = models.CharField(
        _("status description"),
        max_length=16,
        choices=StateDescription.choices,
        blank=True,
        default="",
        help_text="Only while DOING.",
    )
    collection_state = models.CharField(
        _("collection status"),
        max_length=12,
        choices=Collection.choices,
        blank=True,
        default="",
        help_text="collection.state.",
    )
    total_amount = models.BigIntegerField(
        _("total amount (fen)"),
        null=True,
        blank=True,
        help_text="total_amount in fen (set by complete); null before completion.",
    )
    paid_amount = models.BigIntegerField(_("paid amount (fen)"), default=0, help_text="collection.paid_amount, fen.")
    transaction_ids = models.JSONField(
        _("transaction ids"),
        default=list,
        blank=True,
        help_text="collection.details[].transaction_id (WeChat payment ids).",
    )
    request_fingerprint = models.CharField(
        _("request fingerprint"),
        max_length=64,
        help_text="SHA-256 of the create content, to tell a retry from a conflicting reuse.",
    )
    # Outcome bookkeeping: a mutating call whose answer was lost stays here until a query settles it.
    pending_action = models.CharField(
        _("pending action"), max_length=10, choices=PendingAction.choices, blank=True, default=""
    )
    pending_request = models.JSONField(
        _("pending request"), default=dict, blank=True, help_text="What the pending call asked for."
    )
    check_attempts = models.PositiveIntegerField(
        _("queries"), default=0, help_text="Queries made to settle the pending action."
    )
    last_error_code = models.CharField(_("last error code"), max_length=64, blank=True)
    last_error_message = models.CharField(_("last error message"), max_length=255, blank=True)
    last_synced_at = models.DateTimeField(
        _("last synced at"), null=True, blank=True, help_text="Last definite answer from WeChat."
    )
    next_check_at = models.DateTimeField(
        _("next check at"),
        null=True,
        blank=True,
        db_index=True,
        help_text="When a worker must query WeChat next; null = nothing due.",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("PayScore order")
        verbose_name_plural = _("PayScore orders")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "out_order_no"], name="payscore_unique_out_order_no"),
            models.UniqueConstraint(
                fields=["order_id"], condition=~Q(order_id=""), name="payscore_unique_wechat_order_id"
            ),
            models.CheckConstraint(
                name="payscore_out_order_no_charset", condition=Q(out_order_no__regex=OUT_ORDER_NO_PATTERN)
            ),
            models.CheckConstraint(
                name="payscore_state_valid",
                condition=Q(state__in=["PENDING", "REJECTED", "CREATED", "DOING", "DONE", "REVOKED", "EXPIRED"]),
            ),
            models.CheckConstraint(
                name="payscore_state_description_valid",
                condition=Q(state_description__in=["", "USER_CONFIRM", "MCH_COMPLETE"])
                & (Q(state_description="") | Q(state="DOING")),
            ),
            models.CheckConstraint(
                name="payscore_collection_valid", condition=Q(collection_state__in=["", "USER_PAYING", "USER_PAID"])
            ),
            models.CheckConstraint(
                name="payscore_pending_action_valid",
                condition=Q(pending_action__in=["", "CREATE", "COMPLETE", "CANCEL", "SYNC"]),
            ),
            models.CheckConstraint(
                name="payscore_amounts_not_negative",
                condition=(Q(total_amount__isnull=True) | Q(total_amount__gte=0)) & Q(paid_amount__gte=0),
            ),
        ]
        indexes = [models.Index(fields=["merchant", "state", "created_at"])]

    def __str__(self) -> str:
        return f"{self.out_order_no} {self.state_label}"

    @property
    def state_label(self) -> str:
        return f"{self.state}/{self.state_description}" if self.state_description else self.state

    @property
    def risk_fund_label(self) -> str:
        name = (self.risk_fund or {}).get("name", "")
        return self.RiskFund(name).label if name in self.RiskFund.values else name

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES and not self.pending_action


FINAL_STATES = (
    ServiceOrder.State.DONE,
    ServiceOrder.State.REVOKED,
    ServiceOrder.State.EXPIRED,
    ServiceOrder.State.REJECTED,
)


class PayscoreNotification(models.Model):
    """A PayScore notification delivery, stored raw before anything else (then verified, deduplicated, applied).
    One row per delivery; `notification_id` is set only on the delivery that was applied, so its uniqueness is the
    dedupe."""

    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    headers = models.JSONField(_("headers"), default=dict, help_text="The Wechatpay-* and content headers as received.")
    body = models.TextField(_("body"))
    remote_addr = models.CharField(_("sender address"), max_length=64, blank=True)
    claimed_id = models.CharField(
        _("notification id (unverified)"),
        max_length=64,
        blank=True,
        db_index=True,
        help_text="id as read (unverified).",
    )
    event_type = models.CharField(_("event type"), max_length=64, blank=True)
    is_verified = models.BooleanField(_("signature verified"), default=False)
    notification_id = models.CharField(
        _("notification id"),
        max_length=64,
        blank=True,
        default="",
        help_text="Verified notification id; unique (deduplication).",
    )
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    service_order = models.ForeignKey(
        ServiceOrder,
        verbose_name=_("PayScore order"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(
        _("HTTP status"), null=True, blank=True, help_text="What we answered."
    )
    result = models.CharField(_("result"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("PayScore notification")
        verbose_name_plural = _("PayScore notifications")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["notification_id"], condition=~Q(notification_id=""), name="payscore_notification_unique_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type or 'notification'} {self.claimed_id} {self.result}"


class ServiceOrderEvent(models.Model):
    """Append-only: what was sent to WeChat, what came back, every notification and every state change."""

    class Actor(models.TextChoices):
        TERMINAL = "TERMINAL", _("Terminal")
        WORKER = "WORKER", _("Worker")
        STAFF = "STAFF", _("Staff")
        NOTIFICATION = "NOTIFICATION", _("Upstream notification")

    service_order = models.ForeignKey(
        ServiceOrder, verbose_name=_("PayScore order"), on_delete=models.CASCADE, related_name="events"
    )
    notification = models.ForeignKey(
        PayscoreNotification,
        verbose_name=_("notification"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("time"), auto_now_add=True)
    action = models.CharField(
        _("action"), max_length=32, help_text="created, create, query, complete, cancel, sync, facemch, …"
    )
    outcome = models.CharField(
        _("outcome"), max_length=12, blank=True, help_text="SUCCESS / REJECTED / TRANSIENT / UNKNOWN"
    )
    from_state = models.CharField(_("from status"), max_length=32, blank=True)
    to_state = models.CharField(_("to status"), max_length=32, blank=True)
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
        verbose_name = _("PayScore order event")
        verbose_name_plural = _("PayScore order events")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.action} {self.outcome} {self.from_state}->{self.to_state}"

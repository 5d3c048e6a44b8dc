"""Alerts: what the rules found (one row per finding, de-duplicated by its key), who has read each, the team's chat
robots an alert is sent to, and each alert's delivery to each robot (docs/alerts.md).

An alert and its deliveries are written in one transaction (the outbox); `alerts.delivery` sends the deliveries.
Title and body are not stored: they are written from `rule` and `data` in the reader's language (`alerts.text`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.fields import EncryptedTextField
from portal.models import Merchant, ServiceProvider


class Severity(models.IntegerChoices):
    INFO = 10, _("Info")
    WARNING = 20, _("Warning")
    CRITICAL = 30, _("Critical")


class Rule(models.TextChoices):
    PAYMENT_ATTENTION = "payment_attention", _("Payment needs attention")
    REFUND_ATTENTION = "refund_attention", _("Refund needs attention")
    DEVICE_OFFLINE = "device_offline", _("Device offline during opening hours")
    FAILURE_RATE = "failure_rate", _("Many failed payments")
    UPSTREAM_ERRORS = "upstream_errors", _("Channel errors")
    RECONCILIATION = "reconciliation_differences", _("New reconciliation differences")
    PLATFORM_KEYS = "platform_keys", _("WeChat Pay platform keys need attention")


class Alert(models.Model):
    rule = models.CharField(_("rule"), max_length=32, choices=Rule.choices)
    severity = models.PositiveSmallIntegerField(_("severity"), choices=Severity.choices)
    provider = models.ForeignKey(
        ServiceProvider,
        verbose_name=_("service provider"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The merchant's provider (copied, so provider staff's list is one indexed column).",
    )
    merchant = models.ForeignKey(
        Merchant,
        verbose_name=_("merchant"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty for an alert about the provider's channel as a whole.",
    )
    key = models.CharField(
        _("key"), max_length=200, unique=True, help_text="What was found, e.g. attention:payment:42: raised once."
    )
    topic = models.CharField(
        _("topic"), max_length=120, help_text="Rule and subject (merchant): a robot's quiet period is per topic."
    )
    data = models.JSONField(_("data"), default=dict, help_text="The facts the title and body are written from.")
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["provider", "id"], name="alert_provider"),
            models.Index(fields=["merchant", "id"], name="alert_merchant"),
        ]

    def __str__(self) -> str:
        return self.key


class AlertRead(models.Model):
    """A user has read an alert (each reader marks their own)."""

    alert = models.ForeignKey(Alert, verbose_name=_("alert"), on_delete=models.CASCADE, related_name="reads")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    read_at = models.DateTimeField(_("read at"), auto_now_add=True)

    class Meta:
        verbose_name = _("alert read mark")
        verbose_name_plural = _("alert read marks")
        constraints = [models.UniqueConstraint(fields=["user", "alert"], name="alert_read_once")]

    def __str__(self) -> str:
        return f"{self.alert_id} read by {self.user_id}"


class RobotKind(models.TextChoices):
    WECOM = "WECOM", _("WeCom group robot")
    DINGTALK = "DINGTALK", _("DingTalk robot")


class AlertChannel(models.Model):
    """A group chat's robot: a provider's (its alerts and all its merchants') or one merchant's."""

    provider = models.ForeignKey(
        ServiceProvider,
        verbose_name=_("service provider"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_channels",
    )
    merchant = models.ForeignKey(
        Merchant,
        verbose_name=_("merchant"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_channels",
    )
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("robot"), max_length=10, choices=RobotKind.choices)
    webhook_url = EncryptedTextField(
        _("webhook address"), help_text="The robot's address, which carries its key or access token."
    )
    secret = EncryptedTextField(_("signing secret"), blank=True, help_text="DingTalk's SEC… secret (signed robots).")
    address_hint = models.CharField(
        _("address"), max_length=200, help_text="Scheme and host of the address: what the console shows of it."
    )
    min_severity = models.PositiveSmallIntegerField(
        _("lowest severity"), choices=Severity.choices, default=Severity.WARNING
    )
    quiet_minutes = models.PositiveIntegerField(
        _("quiet period (minutes)"),
        default=30,
        help_text="After a message about a rule and merchant, more of them wait this long (0: none).",
    )
    is_active = models.BooleanField(_("enabled"), default=True)
    recent_sends = models.JSONField(
        _("recent messages"), default=list, help_text="Unix times of the messages sent in the last minute."
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

    class Meta:
        verbose_name = _("alert robot")
        verbose_name_plural = _("alert robots")
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                name="alert_channel_one_owner",
                condition=(Q(provider__isnull=False) & Q(merchant__isnull=True))
                | (Q(provider__isnull=True) & Q(merchant__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AlertDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", _("Waiting to be sent")
        SENT = "SENT", _("Sent")
        FAILED = "FAILED", _("Not delivered")
        SKIPPED = "SKIPPED", _("Not sent (quiet period, or the robot was disabled)")

    alert = models.ForeignKey(Alert, verbose_name=_("alert"), on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(
        AlertChannel, verbose_name=_("alert robot"), on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(
        _("next attempt at"), null=True, blank=True, help_text="When to send; while a send is out, its lease."
    )
    last_attempt_at = models.DateTimeField(_("last attempt at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    in_summary = models.BooleanField(
        _("sent in a summary"), default=False, help_text="Sent within one message with others (the rate limit)."
    )
    last_error = models.CharField(_("last error"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("alert delivery")
        verbose_name_plural = _("alert deliveries")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["alert", "channel"], name="alert_delivery_once_per_channel")]
        indexes = [
            models.Index(fields=["next_attempt_at", "id"], condition=Q(status="PENDING"), name="alert_delivery_due"),
            models.Index(fields=["channel", "created_at"], name="alert_delivery_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.alert_id} → {self.channel_id} {self.status}"

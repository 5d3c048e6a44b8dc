"""Webhooks: a merchant's endpoints, the outbox of events for them, each endpoint's delivery of each event, and the
log of every attempt (docs/webhooks.md).

An event is written by the service that makes the change it reports, in the same transaction (the outbox); a
delivery row per subscribed endpoint is written with it. Workers then POST the event's stored body, signed, until
the endpoint answers 2xx or the retry schedule is used up.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from portal.fields import EncryptedTextField
from portal.models import Merchant


class EventType(models.TextChoices):
    PAYMENT_SUCCEEDED = "payment.succeeded", _("Payment succeeded")
    PAYMENT_FAILED = "payment.failed", _("Payment failed")
    PAYMENT_REVERSED = "payment.reversed", _("Payment reversed")
    PAYMENT_ATTENTION = "payment.attention", _("Payment needs attention")
    REFUND_SUCCEEDED = "refund.succeeded", _("Refund succeeded")
    REFUND_FAILED = "refund.failed", _("Refund failed")
    PAYSCORE_CREATED = "payscore.created", _("PayScore order created")
    PAYSCORE_DOING = "payscore.doing", _("PayScore order in service")
    PAYSCORE_DONE = "payscore.done", _("PayScore order completed")
    PAYSCORE_REVOKED = "payscore.revoked", _("PayScore order cancelled")
    PAYSCORE_EXPIRED = "payscore.expired", _("PayScore order expired")
    RECONCILIATION_DIFFERENCE = "reconciliation.difference", _("Reconciliation difference found")
    TEST = "webhook.test", _("Test event")


# What an endpoint may subscribe to (the test event is sent on request, to one endpoint, whatever it subscribes).
SUBSCRIBABLE = [choice for choice in EventType.values if choice != EventType.TEST]


class WebhookEndpoint(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=100, blank=True)
    events = models.JSONField(default=list, help_text="Event types sent to this endpoint.")
    secret = EncryptedTextField(help_text="Signs every delivery; shown once when made or rotated.")
    previous_secret = EncryptedTextField(blank=True, default="", help_text="The secret before the last rotation.")
    previous_secret_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Until when deliveries are also signed with the previous secret."
    )
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["merchant_id", "id"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.url


class WebhookEvent(models.Model):
    """One event of a merchant, as it is sent: `body` is the exact JSON every delivery of it POSTs."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="webhook_events")
    event_id = models.CharField(max_length=40, unique=True, help_text="evt_…: the receiver's dedupe key.")
    type = models.CharField(max_length=40, choices=EventType.choices)
    order_key = models.CharField(
        max_length=64, blank=True, help_text="Events with the same key reach an endpoint in the order they were made."
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", _("Pending")
        DELIVERED = "DELIVERED", _("Delivered")
        FAILED = "FAILED", _("Failed (retries used up)")

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    order_key = models.CharField(max_length=64, blank=True, help_text="The event's, copied for the send order.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts made, all time (numbers each attempt).")
    retry_step = models.PositiveSmallIntegerField(
        default=0, help_text="Failures since it was (re)queued: the position in the retry schedule."
    )
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When to send next; while an attempt is out, its lease. Null: not due."
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_once_per_endpoint"),
        ]
        indexes = [
            # What is due (the workers' claim) and what must go first (an earlier pending event with the same key).
            models.Index(fields=["next_attempt_at", "id"], condition=Q(status="PENDING"), name="webhook_delivery_due"),
            models.Index(
                fields=["endpoint", "order_key", "id"], condition=Q(status="PENDING"), name="webhook_delivery_order"
            ),
            models.Index(fields=["endpoint", "status", "id"], name="webhook_delivery_endpoint"),
            # The failed ones, counted by the metrics (a few, until a person resends them or they are pruned).
            models.Index(fields=["id"], condition=Q(status="FAILED"), name="webhook_delivery_failed"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} {self.status}"


class WebhookAttempt(models.Model):
    """One POST of a delivery: what was sent (headers; the body is the event's) and what came back."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    request_headers = models.JSONField(default=dict)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True, help_text="The first bytes of the answer.")
    error = models.CharField(max_length=200, blank=True, help_text="Timeout, refused connection, …")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        indexes = [models.Index(fields=["started_at"], name="webhook_attempt_started")]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number} {self.status_code or self.error}"

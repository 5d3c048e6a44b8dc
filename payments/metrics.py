"""What the payments app reports when /metrics is scraped (portal.metrics.read_at_scrape, from PaymentsConfig.ready):
the work waiting for a person, and the work the workers are late with. Each is one indexed COUNT."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from payments.models import UNSETTLED_PAYMENT_STATUSES, Payment, PaymentStatus, Refund
from portal.metrics import OVERDUE_AFTER_SECONDS, Reading


def readings() -> list[Reading]:
    overdue = timezone.now() - timedelta(seconds=OVERDUE_AFTER_SECONDS)
    unsettled_refunds = (Refund.Status.PENDING, Refund.Status.PROCESSING)
    return [
        Reading("facepay_payments_attention", Payment.objects.filter(status=PaymentStatus.ATTENTION).count()),
        Reading("facepay_refunds_attention", Refund.objects.filter(status=Refund.Status.ATTENTION).count()),
        Reading(
            "facepay_payments_overdue",
            Payment.objects.filter(next_check_at__lt=overdue, status__in=UNSETTLED_PAYMENT_STATUSES).count(),
        ),
        Reading(
            "facepay_refunds_overdue",
            Refund.objects.filter(next_check_at__lt=overdue, status__in=unsettled_refunds).count(),
        ),
    ]

"""Thin Celery tasks: load by id, call a service. The services re-check state under the row lock, so a task
delivered twice, late or concurrently does nothing harmful."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from payscore import services
from payscore.models import PayscoreNotification


@shared_task(name="payscore.tasks.refresh_order", acks_late=True)
def refresh_order_task(order_id: int) -> str:
    return services.service_order_refresh(order_id=order_id).state_label


@shared_task(name="payscore.tasks.reconcile")
def reconcile() -> int:
    """Beat: re-query every order whose state may have moved without a notification reaching us (pending
    outcomes, completed orders still collecting, CREATED orders recently made or near the 30-day expiry)."""
    order_ids = services.service_orders_due()
    for order_id in order_ids:
        refresh_order_task.delay(order_id)
    return len(order_ids)


@shared_task(name="payscore.tasks.prune_unverified_notifications")
def prune_unverified_notifications() -> int:
    """Daily: delete PayScore notification rows that never verified once they are older than
    NOTIFICATION_UNVERIFIED_RETENTION_DAYS (kept that long for support). Verified rows are kept."""
    cutoff = timezone.now() - timedelta(days=settings.NOTIFICATION_UNVERIFIED_RETENTION_DAYS)
    deleted, _ = PayscoreNotification.objects.filter(is_verified=False, received_at__lt=cutoff).delete()
    return deleted

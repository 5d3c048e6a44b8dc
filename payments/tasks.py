"""Thin Celery tasks: load by id, call a service. The services re-check state, so a task delivered twice, late or
concurrently does nothing harmful."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from payments import platform_certificates, services
from payments.models import UmpayNotification
from portal.models import ChannelCredentials


@shared_task(name="payments.tasks.resolve_payment", acks_late=True)
def resolve_payment_task(payment_id: int) -> str:
    return services.payment_resolve(payment_id=payment_id).status


@shared_task(name="payments.tasks.process_refund", acks_late=True)
def process_refund_task(refund_id: int) -> str:
    return services.refund_process(refund_id=refund_id).status


@shared_task(name="payments.tasks.sweep")
def sweep() -> dict[str, int]:
    """Re-drive everything overdue. Runs every few seconds from beat.

    Each overdue order is sent to the workers at most once per SWEEP_REDISPATCH_SECONDS (an atomic add in the shared
    cache). Without that, once the workers fell more than one sweep behind, every sweep queued the same overdue
    orders again, the queue filled with duplicates, and the backlog fed itself (seen in a fault run: sweeps queueing
    500 + 500 every 5 s while 1,000 orders waited for minutes). A task lost with its worker is sent again after that
    time.
    """
    payment_ids, refund_ids = services.due_work()
    sent = 0
    for kind, ids, task in (
        ("payments", payment_ids, resolve_payment_task),
        ("refunds", refund_ids, process_refund_task),
    ):
        for pk in ids:
            if cache.add(f"sweep:{kind}:{pk}", 1, timeout=settings.SWEEP_REDISPATCH_SECONDS):
                task.delay(pk)
                sent += 1
    return {"payments": len(payment_ids), "refunds": len(refund_ids), "sent": sent}


@shared_task(name="payments.tasks.refresh_platform_certificates")
def refresh_platform_certificates() -> dict[str, int]:
    """Every PLATFORM_CERTIFICATE_CHECK_SECONDS: download the WeChat Pay platform certificates of every credentials
    row that uses them and is due (never downloaded, PLATFORM_CERTIFICATE_REFRESH_SECONDS since the last download, or
    failing). Each row is merged under its own lock, so overlapping runs both land; a run killed half-way is finished
    by the next one."""
    return platform_certificates.refresh_all()


@shared_task(name="payments.tasks.refresh_platform_certificates_of")
def refresh_platform_certificates_of(credentials_id: int) -> str:
    """At once, for one credentials row: a WeChat answer came signed with a serial it does not have
    (payments.channels). Safe to repeat and to run beside the scheduled refresh (the row's lock)."""
    credentials = ChannelCredentials.objects.filter(pk=credentials_id).first()
    if credentials is None:
        return "GONE"
    return platform_certificates.refresh(credentials).status


@shared_task(name="payments.tasks.prune_unverified_notifications")
def prune_unverified_notifications() -> int:
    """Daily: delete UMF notification rows that never verified once they are older than
    NOTIFICATION_UNVERIFIED_RETENTION_DAYS (kept that long for support). Verified rows are kept."""
    cutoff = timezone.now() - timedelta(days=settings.NOTIFICATION_UNVERIFIED_RETENTION_DAYS)
    deleted, _ = UmpayNotification.objects.filter(is_verified=False, received_at__lt=cutoff).delete()
    return deleted

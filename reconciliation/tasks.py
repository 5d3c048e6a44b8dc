"""Thin Celery tasks: the beat job fans out one task per merchant and day; each runs `reconcile_day`, which
re-checks everything (a second delivery re-imports nothing and records the same result)."""

from __future__ import annotations

from datetime import date, timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from portal.models import Merchant
from reconciliation import services


@shared_task(name="reconciliation.tasks.fetch_bills")
def fetch_bills_task(bill_date: str = "") -> int:
    """Queue the day's reconciliation (default: yesterday, China time) for every merchant whose channel offers
    bills."""
    day = bill_date or (timezone.localdate() - timedelta(days=1)).isoformat()
    merchant_ids = list(services.merchants_with_bills().values_list("pk", flat=True))
    for merchant_id in merchant_ids:
        reconcile_merchant_day_task.delay(merchant_id, day)
    return len(merchant_ids)


# A 200,000-row bill takes tens of seconds to import and match: more than the default task limits allow.
@shared_task(
    name="reconciliation.tasks.reconcile_merchant_day", bind=True, max_retries=None, soft_time_limit=540, time_limit=600
)
def reconcile_merchant_day_task(self, merchant_id: int, bill_date: str) -> str:
    merchant = Merchant.objects.select_related("provider").get(pk=merchant_id)
    try:
        report = services.reconcile_day(merchant=merchant, bill_date=date.fromisoformat(bill_date))
    except services.BillNotReady:
        if self.request.retries >= settings.RECONCILIATION_RETRY_MAX:
            return "NOT_READY"
        raise self.retry(countdown=settings.RECONCILIATION_RETRY_SECONDS) from None
    except services.BillRefused:
        return "REFUSED"
    except services.BillUnavailable:
        return "UNAVAILABLE"
    return report.status

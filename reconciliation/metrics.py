"""What reconciliation reports when /metrics is scraped (portal.metrics.read_at_scrape, from
ReconciliationConfig.ready): the differences nobody has explained yet (one COUNT on the status index)."""

from __future__ import annotations

from portal.metrics import Reading
from reconciliation.models import Difference


def readings() -> list[Reading]:
    return [
        Reading(
            "facepay_reconciliation_differences_open",
            Difference.objects.filter(status=Difference.Status.OPEN).count(),
        )
    ]

"""What the webhooks app reports when /metrics is scraped (portal.metrics.read_at_scrape, from WebhooksConfig.ready):
the deliveries not delivered yet or given up on. Each is one COUNT over a partial index."""

from __future__ import annotations

from portal.metrics import Reading
from webhooks.models import WebhookDelivery


def readings() -> list[Reading]:
    return [
        Reading("facepay_webhook_deliveries", WebhookDelivery.objects.filter(status=status).count(), (status.value,))
        for status in (WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED)
    ]

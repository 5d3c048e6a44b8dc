"""Webhook work for the Celery workers: take nothing, call one service."""

from __future__ import annotations

import logging

from celery import shared_task

from webhooks import delivery, services

logger = logging.getLogger(__name__)


@shared_task(name="webhooks.tasks.deliver", ignore_result=True)
def deliver() -> None:
    """Send what is due (queued when an event commits, and every 2 s by the beat). A second one arriving while this
    process already sends returns at once."""
    result = delivery.drain()
    if result is not None and result.sent:
        logger.info(
            "webhooks: %d sent, %d delivered, %d failed attempts in %.1f s",
            result.sent,
            result.delivered,
            result.failed_attempts,
            result.seconds,
        )


@shared_task(name="webhooks.tasks.prune", ignore_result=True)
def prune() -> None:
    deleted = services.prune()
    if deleted:
        logger.info("webhooks: pruned %d events older than the retention period", deleted)

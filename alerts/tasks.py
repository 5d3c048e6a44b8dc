"""Alert work for the Celery workers: take nothing, call one service."""

from __future__ import annotations

import logging

from celery import shared_task

from . import delivery, rules, services

logger = logging.getLogger(__name__)


@shared_task(name="alerts.tasks.evaluate", ignore_result=True)
def evaluate() -> None:
    """Run the rules, then send what is due to the chat robots (the beat, every ALERT_EVALUATE_SECONDS)."""
    raised = rules.evaluate()
    sent = delivery.deliver()
    if raised or sent:
        logger.info("alerts: %d raised, %d robot messages sent", raised, sent)


@shared_task(name="alerts.tasks.prune", ignore_result=True)
def prune() -> None:
    deleted = services.prune()
    if deleted:
        logger.info("alerts: pruned %d alerts older than the retention period", deleted)

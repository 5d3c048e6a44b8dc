"""Celery entry point for the sandbox outbox (the beat schedule runs it every few seconds)."""

from __future__ import annotations

from celery import shared_task

from .services import sandbox_deliver_due_notifications


@shared_task(name="sandbox.tasks.deliver_notifications", ignore_result=True)
def deliver_notifications() -> int:
    # Idempotent: rows are claimed before sending, so overlapping runs never send the same attempt twice.
    return sandbox_deliver_due_notifications()

"""Merchant API work for the Celery beat."""

from __future__ import annotations

from celery import shared_task
from oauth2_provider.models import clear_expired


@shared_task(name="merchant_api.tasks.clear_expired_tokens", ignore_result=True)
def clear_expired_tokens() -> None:
    """Delete expired access tokens (each client gets a new one every hour), so the table does not grow forever."""
    clear_expired()

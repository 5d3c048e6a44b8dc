from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from portal.models import DeviceNonce


@shared_task(name="portal.tasks.prune_device_nonces")
def prune_device_nonces() -> int:
    """Forget nonces that can no longer be replayed: a replay must carry a timestamp inside the window, so a nonce
    first seen more than two windows ago can never validly come back."""
    cutoff = timezone.now() - timedelta(seconds=2 * settings.TERMINAL_TIMESTAMP_WINDOW_SECONDS + 60)
    deleted, _ = DeviceNonce.objects.filter(created_at__lt=cutoff).delete()
    return deleted

"""Thin Celery tasks: call a service. The service re-checks every row under its lock, so a second or concurrent
delivery anonymises nothing twice."""

from __future__ import annotations

from celery import shared_task

from members import services


@shared_task(name="members.tasks.anonymise_stale_members")
def anonymise_stale_members() -> int:
    """Daily from beat: anonymise members not seen for MEMBER_RETENTION_DAYS. Returns how many."""
    return services.members_anonymise_stale().count

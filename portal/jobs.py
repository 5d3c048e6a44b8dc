"""Work for the Celery workers, queued by task name when the transaction that made it due commits.

Services queue their follow-up work through here instead of importing their app's tasks module: the tasks import
the services they run, so the services importing the tasks back would make a cycle. Each task's name is declared
on its decorator (`@shared_task(name=...)`) and named once more here by the service that queues it; a test checks
that every name queued is a registered task.

A task queued here is never the only record of the work: the committed row carries its lease (`next_check_at`) and
the sweeper re-drives every overdue one. So when the broker cannot take the task (Redis down or hanging: the publish
gives up after CELERY_TASK_PUBLISH_RETRY_POLICY), the failure is logged and swallowed — the request that committed
the order still answers with it, and the sweeper sends the task once the broker is back."""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(task_name: str, *args, countdown: float = 0.0) -> None:
    """Send `task_name(*args)` to the workers once the current transaction commits (at once outside one), to run
    no sooner than `countdown` seconds later. Nothing is sent if the transaction rolls back; a publish that fails
    is logged and left to the sweeper."""
    transaction.on_commit(lambda: _send(task_name, list(args), countdown))


def _send(task_name: str, args: list, countdown: float) -> None:
    try:
        current_app.send_task(task_name, args=args, countdown=countdown)
    except Exception as exc:  # noqa: BLE001 - any publish failure: the row's lease brings the work back
        logger.warning(
            "could not queue %s%s (%s: %s); the sweeper re-drives it from its next_check_at",
            task_name,
            tuple(args),
            type(exc).__name__,
            str(exc)[:200],
        )

"""Work for the Celery workers, queued by task name when the transaction that made it due commits.

Services queue their follow-up work through here instead of importing their app's tasks module: the tasks import
the services they run, so the services importing the tasks back would make a cycle. Each task's name is declared
on its decorator (`@shared_task(name=...)`) and named once more here by the service that queues it; a test checks
that every name queued is a registered task."""

from __future__ import annotations

from celery import current_app
from django.db import transaction


def enqueue_on_commit(task_name: str, *args, countdown: float = 0.0) -> None:
    """Send `task_name(*args)` to the workers once the current transaction commits (at once outside one), to run
    no sooner than `countdown` seconds later. Nothing is sent if the transaction rolls back."""
    transaction.on_commit(lambda: current_app.send_task(task_name, args=list(args), countdown=countdown))

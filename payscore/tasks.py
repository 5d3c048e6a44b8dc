"""Thin Celery tasks: load by id, call a service. The services re-check state under the row lock, so a task
delivered twice, late or concurrently does nothing harmful."""

from __future__ import annotations

from celery import shared_task

from payscore import services


@shared_task(name="payscore.tasks.refresh_order", acks_late=True)
def refresh_order_task(order_id: int) -> str:
    return services.service_order_refresh(order_id=order_id).state_label


@shared_task(name="payscore.tasks.reconcile")
def reconcile() -> int:
    """Beat: re-query every order whose state may have moved without a notification reaching us (pending
    outcomes, completed orders still collecting, CREATED orders recently made or near the 30-day expiry)."""
    order_ids = services.service_orders_due()
    for order_id in order_ids:
        refresh_order_task.delay(order_id)
    return len(order_ids)

"""Thin Celery tasks: load by id, call a service. The services re-check state, so a task delivered twice, late or
concurrently does nothing harmful (STYLE §8)."""

from __future__ import annotations

from celery import shared_task

from payments import services


@shared_task(name="payments.tasks.resolve_payment", acks_late=True)
def resolve_payment_task(payment_id: int) -> str:
    return services.payment_resolve(payment_id=payment_id).status


@shared_task(name="payments.tasks.process_refund", acks_late=True)
def process_refund_task(refund_id: int) -> str:
    return services.refund_process(refund_id=refund_id).status


@shared_task(name="payments.tasks.sweep")
def sweep() -> dict[str, int]:
    """Re-drive everything overdue. Runs every few seconds from beat."""
    payment_ids, refund_ids = services.due_work()
    for payment_id in payment_ids:
        resolve_payment_task.delay(payment_id)
    for refund_id in refund_ids:
        process_refund_task.delay(refund_id)
    return {"payments": len(payment_ids), "refunds": len(refund_ids)}

"""Thin Celery tasks: take ids, call a service."""

from __future__ import annotations

from celery import shared_task

from tenants.webhooks.services import webhook_delivery_attempt, webhooks_deliver_due


@shared_task(name="webhooks.deliver", acks_late=True)
def webhook_deliver_task(delivery_id: int) -> str:
    # No Celery retry: a failed attempt schedules the next one in the row itself, and the
    # ``webhooks.deliver_due`` sweep sends it when it is due (durable across restarts).
    return webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.deliver_due")
def webhooks_deliver_due_task() -> int:
    return webhooks_deliver_due()

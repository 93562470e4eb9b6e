from __future__ import annotations

from celery import shared_task

from subscriptions.services import subscriptions_renew_due


@shared_task(name="subscriptions.renew_due")
def subscriptions_renew_due_task() -> dict[str, int]:
    """Trials ending, renewals (one per missed period) and expiry, for every due subscription."""
    return subscriptions_renew_due()

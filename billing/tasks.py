from __future__ import annotations

from celery import shared_task

from billing.services import invoices_generate_due, invoices_retry_due


@shared_task(name="billing.invoice_due")
def invoices_generate_due_task() -> dict[str, int]:
    """Invoice every subscription period that has closed (each on its own anchor)."""
    return invoices_generate_due()


@shared_task(name="billing.retry_payments")
def invoices_retry_due_task() -> dict[str, int]:
    """Collect open invoices and retry failed payments on the dunning schedule."""
    return invoices_retry_due()

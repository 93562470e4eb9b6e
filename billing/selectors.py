"""Reads of invoices, always scoped to the tenant asking."""

from __future__ import annotations

from django.db.models import QuerySet

from billing.models import Invoice, InvoiceStatus
from core.errors import InvalidInput, NotFound


def invoice_list(*, tenant_id: int, status: str | None = None) -> QuerySet[Invoice]:
    invoices = Invoice.objects.filter(tenant_id=tenant_id).exclude(status=InvoiceStatus.DRAFT)
    if status:
        if status not in InvoiceStatus.values:
            raise InvalidInput(
                f"Unknown status '{status}'.",
                code="invalid_status",
                details={"allowed": InvoiceStatus.values},
            )
        invoices = invoices.filter(status=status)
    return invoices.order_by("-finalized_at", "-id")


def invoice_get(*, tenant_id: int, number: str) -> Invoice:
    """A tenant's own finalized invoice by number; another tenant's number is 404."""
    invoice = (
        Invoice.objects.select_related("tenant")
        .prefetch_related("lines", "credit_notes")
        .filter(tenant_id=tenant_id, number=number)
        .first()
    )
    if invoice is None:
        raise NotFound("No such invoice.", code="invoice_not_found")
    return invoice

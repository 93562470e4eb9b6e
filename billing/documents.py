"""The invoice as an HTML page and a PDF (WeasyPrint), from ``templates/billing/invoice.html``."""

from __future__ import annotations

from django.template.loader import render_to_string

from billing.models import Invoice
from core.money import Money


def _money(amount: int, currency: str) -> str:
    return Money(amount, currency).format()


def invoice_html(invoice: Invoice) -> str:
    lines = [
        {"line": line, "amount": _money(line.amount, invoice.currency)}
        for line in invoice.lines.all()
    ]
    return render_to_string(
        "billing/invoice.html",
        {
            "invoice": invoice,
            "tenant": invoice.tenant,
            "lines": lines,
            "subtotal": _money(invoice.subtotal, invoice.currency),
            "tax": _money(invoice.tax, invoice.currency),
            "tax_percent": f"{invoice.tax_rate_bps / 100:.2f}",
            "total": _money(invoice.total, invoice.currency),
            "amount_paid": _money(invoice.amount_paid, invoice.currency),
            "amount_due": _money(invoice.amount_due, invoice.currency),
            "footer": (invoice.tenant.config or {}).get("invoice_footer", ""),
        },
    )


def invoice_pdf(invoice: Invoice) -> bytes:
    from weasyprint import HTML  # type: ignore[import-untyped]

    return bytes(HTML(string=invoice_html(invoice)).write_pdf())

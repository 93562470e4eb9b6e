"""Bank transfer: nothing is charged online; staff mark invoices paid in the admin."""

from __future__ import annotations

from billing.gateways.base import ChargeResult, RefundResult
from billing.models import Invoice, Payment
from core.errors import Conflict


class ManualGateway:
    name = "manual"

    def charge(self, *, invoice: Invoice, amount: int, idempotency_key: str) -> ChargeResult:
        return ChargeResult(status="pending", external_id="")

    def refund(self, *, payment: Payment, amount: int, idempotency_key: str) -> RefundResult:
        return RefundResult(external_id="")  # paid back by bank transfer, recorded by staff

    def setup_session_url(self, *, tenant_id: int, success_url: str, cancel_url: str) -> str:
        raise Conflict(
            "Payments are by bank transfer; there is no card to save.", code="gateway_manual"
        )

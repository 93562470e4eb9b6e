"""The payment-gateway interface. Two real implementations: Stripe and manual (bank transfer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from billing.models import Invoice, Payment


@dataclass(frozen=True)
class ChargeResult:
    status: str  # succeeded | pending | failed
    external_id: str = ""
    failure_code: str = ""
    failure_message: str = ""


@dataclass(frozen=True)
class RefundResult:
    external_id: str


class PaymentGateway(Protocol):
    name: str

    def charge(self, *, invoice: Invoice, amount: int, idempotency_key: str) -> ChargeResult:
        """Collect ``amount`` of an open invoice. The same key never charges twice."""
        ...

    def refund(self, *, payment: Payment, amount: int, idempotency_key: str) -> RefundResult: ...

    def setup_session_url(self, *, tenant_id: int, success_url: str, cancel_url: str) -> str:
        """A URL where the tenant saves a payment method (Stripe Checkout, setup mode)."""
        ...

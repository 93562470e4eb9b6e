"""Stripe: each tenant is a Stripe Customer; cards are saved with Checkout in setup mode and
open invoices are charged off-session with the customer's default payment method.

Every charge and refund carries the caller's idempotency key (one per invoice and attempt),
so a retried request returns Stripe's first answer instead of charging again. Errors that
leave the outcome unknown (network, Stripe 5xx, rate limits) raise ``ServiceUnavailable``
(code ``gateway_unavailable``): retry the *same* attempt with the *same* key.
"""

from __future__ import annotations

import stripe
import structlog

from billing.gateways.base import ChargeResult, RefundResult
from billing.models import Invoice, Payment
from billing.stripe_customers import (
    TRANSIENT_ERRORS,
    customer_refresh,
    default_payment_method_id,
    request_options,
    stripe_customer_ensure,
)
from core.errors import Conflict, ServiceUnavailable

log = structlog.get_logger(__name__)

_PENDING_STATUSES = frozenset({"processing", "requires_capture"})


def _unavailable(exc: stripe.StripeError) -> ServiceUnavailable:
    return ServiceUnavailable(
        "Stripe could not be reached; try again with the same idempotency key.",
        code="gateway_unavailable",
        details={"stripe_error": type(exc).__name__},
    )


def _error_payment_intent_id(exc: stripe.StripeError) -> str:
    """The PaymentIntent a declined confirmation left behind (``error.payment_intent``)."""
    intent = exc.error.payment_intent if exc.error is not None else None
    return str(intent.id) if intent is not None and intent.id else ""


def _result_from_intent(intent: stripe.PaymentIntent) -> ChargeResult:
    status = str(intent.status)
    if status == "succeeded":
        return ChargeResult(status="succeeded", external_id=intent.id)
    if status in _PENDING_STATUSES:
        return ChargeResult(status="pending", external_id=intent.id)
    # requires_payment_method (declined), requires_action (authentication needed, which an
    # off-session charge cannot do), canceled, ...
    error = intent.last_payment_error
    return ChargeResult(
        status="failed",
        external_id=intent.id,
        failure_code=str((error.code if error else None) or status or "failed"),
        failure_message=str((error.message if error else None) or f"The payment is {status}."),
    )


class StripeGateway:
    name = "stripe"

    def charge(self, *, invoice: Invoice, amount: int, idempotency_key: str) -> ChargeResult:
        customer_id = stripe_customer_ensure(tenant_id=invoice.tenant_id)
        try:
            customer = customer_refresh(customer_id)
        except TRANSIENT_ERRORS as exc:
            raise _unavailable(exc) from exc
        payment_method = default_payment_method_id(customer)
        if payment_method is None:
            return ChargeResult(
                status="failed",
                failure_code="no_payment_method",
                failure_message="The tenant has no default payment method.",
            )
        try:
            intent = stripe.PaymentIntent.create(
                amount=amount,
                currency=invoice.currency.lower(),
                customer=customer_id,
                payment_method=payment_method,
                off_session=True,
                confirm=True,
                # Saved cards need no redirect; refuse methods that would.
                automatic_payment_methods={"enabled": True, "allow_redirects": "never"},
                description=f"Invoice {invoice.number}",
                metadata={
                    "invoice_id": str(invoice.pk),
                    "invoice_number": invoice.number or "",
                    "tenant_id": str(invoice.tenant_id),
                },
                idempotency_key=idempotency_key,
                **request_options(),
            )
        except stripe.CardError as exc:
            log.info(
                "stripe_charge_declined",
                invoice_id=invoice.pk,
                code=exc.code,
                decline_code=getattr(exc.error, "decline_code", None),
            )
            return ChargeResult(
                status="failed",
                external_id=_error_payment_intent_id(exc),
                failure_code=str(exc.code or "card_declined"),
                failure_message=str(exc.user_message or "The card was declined."),
            )
        except stripe.IdempotencyError as exc:
            # The key was used before with other parameters: nothing was charged twice.
            raise Conflict(
                "This payment attempt was already sent with other parameters.",
                code="idempotency_conflict",
            ) from exc
        except stripe.InvalidRequestError as exc:
            # E.g. the payment method was detached or the customer deleted meanwhile.
            log.warning("stripe_charge_rejected", invoice_id=invoice.pk, code=exc.code)
            return ChargeResult(
                status="failed",
                external_id=_error_payment_intent_id(exc),
                failure_code=str(exc.code or "invalid_request"),
                failure_message=str(exc.user_message or "Stripe refused the payment."),
            )
        except TRANSIENT_ERRORS as exc:
            raise _unavailable(exc) from exc
        return _result_from_intent(intent)

    def refund(self, *, payment: Payment, amount: int, idempotency_key: str) -> RefundResult:
        if not payment.external_id:
            raise Conflict("The payment has no Stripe PaymentIntent.", code="refund_not_possible")
        try:
            refund = stripe.Refund.create(
                payment_intent=payment.external_id,
                amount=amount,
                metadata={"invoice_id": str(payment.invoice_id), "payment_id": str(payment.pk)},
                idempotency_key=idempotency_key,
                **request_options(),
            )
        except stripe.InvalidRequestError as exc:
            raise Conflict(
                str(exc.user_message or "Stripe refused the refund."),
                code="refund_rejected",
                details={"stripe_code": exc.code or ""},
            ) from exc
        except TRANSIENT_ERRORS as exc:
            raise _unavailable(exc) from exc
        return RefundResult(external_id=str(refund.id))

    def setup_session_url(self, *, tenant_id: int, success_url: str, cancel_url: str) -> str:
        customer_id = stripe_customer_ensure(tenant_id=tenant_id)
        try:
            session = stripe.checkout.Session.create(
                mode="setup",
                customer=customer_id,
                payment_method_types=["card"],
                success_url=success_url,
                cancel_url=cancel_url,
                client_reference_id=str(tenant_id),
                metadata={"tenant_id": str(tenant_id)},
                setup_intent_data={"metadata": {"tenant_id": str(tenant_id)}},
                **request_options(),
            )
        except TRANSIENT_ERRORS as exc:
            raise _unavailable(exc) from exc
        if not session.url:
            raise ServiceUnavailable("Stripe returned no Checkout URL.", code="gateway_unavailable")
        return str(session.url)

"""The gateway in use: Stripe when a Stripe secret key is configured, else manual."""

from __future__ import annotations

from django.conf import settings

from billing.gateways.base import PaymentGateway


def get_gateway() -> PaymentGateway:
    if getattr(settings, "STRIPE_SECRET_KEY", ""):
        from billing.gateways.stripe import StripeGateway

        return StripeGateway()
    from billing.gateways.manual import ManualGateway

    return ManualGateway()

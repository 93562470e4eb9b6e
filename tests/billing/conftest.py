from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.audit import SYSTEM
from subscriptions.catalog import catalog_sync
from subscriptions.services import subscription_create
from tenants.services import tenant_create

BILLING_PLANS = {
    "plans": [
        {
            "code": "bill-basic",
            "name": "Basic",
            "interval": "month",
            "price": 1000,
            "currency": "USD",
            "quotas": {"api_calls": 1000, "widgets": 10},
            "overage": {
                "api_calls": {"unit_price": 1, "unit_size": 1000},
                "widgets": {"unit_price": 333, "unit_size": 10},
            },
        },
        {
            "code": "bill-plus",
            "name": "Plus",
            "interval": "month",
            "price": 5000,
            "currency": "USD",
        },
    ]
}


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture
def billing_plans(session_tenants, db):
    catalog_sync(data=BILLING_PLANS, actor=SYSTEM)


@pytest.fixture
def billed_tenant(billing_plans):
    """A tenant (no schema needed) subscribed to bill-basic from 2027-01-01."""
    counter = iter(range(1, 10_000))

    def make(plan: str = "bill-basic", start: datetime | None = None, **config):
        tenant = tenant_create(
            slug=f"billed-{next(counter)}", name="Billed Co", email="b@example.com", provision=False
        ).tenant
        if config:
            tenant.config = config
            tenant.save()
        sub = subscription_create(tenant_id=tenant.pk, plan_code=plan, now=start or utc(2027, 1, 1))
        return tenant, sub

    return make


@pytest.fixture
def fake(settings, monkeypatch):
    """Stripe's HTTP API answered on ``responses`` (tests.billing.stripe_fixtures.FakeStripe)."""
    import responses
    import stripe

    from tests.billing import stripe_fixtures as sf

    settings.STRIPE_SECRET_KEY = sf.SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = sf.WEBHOOK_SECRET
    monkeypatch.setattr(stripe, "api_base", sf.API_BASE)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    # The requests client, so that ``responses`` answers every call (nothing reaches the network).
    monkeypatch.setattr(stripe, "default_http_client", stripe.RequestsClient())
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield sf.FakeStripe(rsps)

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.audit import SYSTEM
from subscriptions.catalog import catalog_sync
from subscriptions.models import CURRENT_STATUSES, Plan, Subscription
from usage import meter

METERED_PLANS = {
    "plans": [
        {
            "code": "metered-hard",
            "name": "Hard",
            "interval": "month",
            "price": 0,
            "currency": "USD",
            "quotas": {"api_calls": 5, "widgets": 10},
            "rate_limit_per_minute": 1000,
        },
        {
            "code": "metered-overage",
            "name": "Overage",
            "interval": "month",
            "price": 0,
            "currency": "USD",
            "quotas": {"api_calls": 2, "widgets": 100},
            "overage": {"api_calls": {"unit_price": 1, "unit_size": 1000}},
            "rate_limit_per_minute": 1000,
        },
        {
            "code": "metered-slow",
            "name": "Slow",
            "interval": "month",
            "price": 0,
            "currency": "USD",
            "quotas": {"api_calls": None},
            "rate_limit_per_minute": 3,
        },
    ]
}


@pytest.fixture(autouse=True)
def _clean_meter_buffer() -> Iterator[None]:
    meter.buffer.drain()
    meter.credits_clear()
    meter.reset_client()
    yield
    meter.buffer.drain()
    meter.credits_clear()
    meter.reset_client()


@pytest.fixture
def on_plan(session_tenants, db):
    """Put a session tenant's current subscription on one of the metered plans."""
    catalog_sync(data=METERED_PLANS, actor=SYSTEM)

    def put(tenant, code):
        sub = Subscription.objects.get(tenant=tenant, status__in=CURRENT_STATUSES)
        sub.plan_version = Plan.objects.get(code=code).current_version
        sub.save()
        from usage.limits import tenant_limits_invalidate

        tenant_limits_invalidate(tenant_id=tenant.pk)
        return sub

    return put

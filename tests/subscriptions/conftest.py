from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.audit import SYSTEM
from subscriptions.catalog import catalog_sync
from tenants.services import tenant_create

TEST_PLANS = {
    "plans": [
        {
            "code": "starter",
            "name": "Starter",
            "interval": "month",
            "price": 1000,
            "currency": "USD",
            "quotas": {"api_calls": 1000},
        },
        {
            "code": "growth",
            "name": "Growth",
            "interval": "month",
            "price": 5000,
            "currency": "USD",
            "quotas": {"api_calls": 100000},
            "overage": {"api_calls": {"unit_price": 1, "unit_size": 1000}},
        },
        {
            "code": "starter-yearly",
            "name": "Starter yearly",
            "interval": "year",
            "price": 10000,
            "currency": "USD",
        },
        {"code": "euro", "name": "Euro", "interval": "month", "price": 900, "currency": "EUR"},
        {
            "code": "trial-card",
            "name": "Trial needing a card",
            "interval": "month",
            "price": 2000,
            "currency": "USD",
            "trial_days": 7,
            "requires_payment_method": True,
        },
    ]
}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def plans(session_tenants, db):
    catalog_sync(data=TEST_PLANS, actor=SYSTEM)


@pytest.fixture
def new_tenant(session_tenants, db):
    """A tenant row without a schema or subscription (subscriptions live in public)."""
    counter = iter(range(1, 1000))

    def make(slug: str | None = None):
        return tenant_create(
            slug=slug or f"subtest-{next(counter)}",
            name="Sub Test",
            email="s@example.com",
            provision=False,
        ).tenant

    return make

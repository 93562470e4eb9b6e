"""Ingestion under concurrency, committed for real (no test transaction: the workers'
connections must see the tenant), in a module of its own for that reason."""

from __future__ import annotations

import pytest

from tests.usage.test_ingestion import events
from usage.meter import redis_client
from usage.models import UsageEvent, UsageRecord

RACE_PLAN = {
    "plans": [
        {
            "code": "ingest-race",
            "name": "Race",
            "interval": "month",
            "price": 0,
            "currency": "USD",
            "quotas": {"api_calls": None, "widgets": None},
            "rate_limit_per_minute": 1000,
        }
    ]
}


@pytest.fixture
def racing_tenant(session_tenants, django_db_blocker):
    from core.audit import SYSTEM
    from subscriptions.catalog import catalog_sync
    from subscriptions.models import (
        CURRENT_STATUSES,
        Plan,
        Subscription,
        SubscriptionPeriod,
    )
    from subscriptions.services import subscription_create
    from tenants.services import tenant_create
    from tests.conftest import committed_tenants_delete, plans_remove_except
    from usage.limits import tenant_limits, tenant_limits_invalidate

    with django_db_blocker.unblock():
        plans_before = set(Plan.objects.values_list("code", flat=True))
        catalog_sync(data=RACE_PLAN, actor=SYSTEM)
        tenant = tenant_create(
            slug="ingest-race", name="R", email="r@example.com", provision=False
        ).tenant
        made = Subscription.objects.filter(tenant=tenant)  # from the signup event, if any
        SubscriptionPeriod.objects.filter(subscription__in=made).delete()
        made.delete()
        subscription_create(tenant_id=tenant.pk, plan_code="ingest-race")
        assert Subscription.objects.filter(tenant=tenant, status__in=CURRENT_STATUSES).exists()
        tenant_limits_invalidate(tenant_id=tenant.pk)
        assert tenant_limits(tenant_id=tenant.pk) is not None
        yield tenant.pk
        committed_tenants_delete([tenant.pk])
        plans_remove_except(plans_before)
        redis_client().delete(f"usage:seen:{tenant.pk}")
        tenant_limits_invalidate(tenant_id=tenant.pk)


def test_concurrent_overlapping_batches_count_each_id_once(racing_tenant, django_db_blocker):
    """Two workers send the same ids in opposite orders at once, past the Redis check (not
    filled until commit): the unique constraint decides, and id order means no deadlock."""
    import threading

    from django.db import connections

    from usage.services import usage_events_ingest

    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    rounds = 5
    for r in range(rounds):
        batch = events(200, start=r * 1000, quantity=2)
        barrier = threading.Barrier(2)

        def worker(batch=batch, barrier=barrier) -> None:
            try:
                barrier.wait()
                got = usage_events_ingest(tenant_id=racing_tenant, events=batch)
                results.append((got.accepted, got.duplicates))
            except BaseException as exc:
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [
            threading.Thread(target=worker, kwargs={"batch": b})
            for b in (batch, list(reversed(batch)))
        ]
        with django_db_blocker.unblock():
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
    assert not errors, errors
    assert len(results) == 2 * rounds
    assert sum(a for a, _ in results) == 200 * rounds  # each id accepted exactly once
    assert all(a + d == 200 for a, d in results)
    with django_db_blocker.unblock():
        assert UsageEvent.objects.filter(tenant_id=racing_tenant).count() == 200 * rounds
        assert (
            sum(
                UsageRecord.objects.filter(tenant_id=racing_tenant).values_list(
                    "quantity", flat=True
                )
            )
            == 400 * rounds
        )
        connections.close_all()

"""Renewals through the beat sweep: month ends, catch-up after downtime, concurrent runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import time_machine
from django.db import connection, connections

from core.models import DomainEvent
from subscriptions.models import (
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
)
from subscriptions.services import subscription_create, subscription_renew, subscriptions_renew_due
from subscriptions.tasks import subscriptions_renew_due_task
from tenants.services import tenant_create
from tests.subscriptions.conftest import utc


def bounds(sub: Subscription) -> list[tuple]:
    return list(sub.periods.order_by("number").values_list("start", "end"))


@pytest.mark.django_db
def test_month_end_anchor_renews_feb_28_then_mar_31(plans, new_tenant):
    sub = subscription_create(
        tenant_id=new_tenant().pk, plan_code="starter", now=utc(2027, 1, 31, 9)
    )
    for day in (utc(2027, 2, 28, 9), utc(2027, 3, 31, 9)):
        with time_machine.travel(day, tick=False):
            subscriptions_renew_due_task()
    sub.refresh_from_db()
    assert bounds(sub) == [
        (utc(2027, 1, 31, 9), utc(2027, 2, 28, 9)),
        (utc(2027, 2, 28, 9), utc(2027, 3, 31, 9)),
        (utc(2027, 3, 31, 9), utc(2027, 4, 30, 9)),
    ]


@pytest.mark.django_db
def test_leap_year_renewal_is_feb_29(plans, new_tenant):
    sub = subscription_create(tenant_id=new_tenant().pk, plan_code="starter", now=utc(2028, 1, 31))
    with time_machine.travel(utc(2028, 3, 31), tick=False):
        assert subscriptions_renew_due()["failed"] == 0
    sub.refresh_from_db()
    assert [end for _, end in bounds(sub)] == [utc(2028, 2, 29), utc(2028, 3, 31), utc(2028, 4, 30)]


@pytest.mark.django_db
def test_catch_up_after_downtime_renews_once_per_missed_period(plans, new_tenant):
    sub = subscription_create(tenant_id=new_tenant().pk, plan_code="starter", now=utc(2027, 1, 15))
    with time_machine.travel(utc(2027, 5, 20), tick=False):  # four months without a beat
        first = subscriptions_renew_due()
        second = subscriptions_renew_due()
    # (the session tenants' subscriptions are due too; count this one's periods)
    assert first["failed"] == 0
    assert second == {"subscriptions": 0, "renewals": 0, "failed": 0}
    sub.refresh_from_db()
    starts = [start for start, _ in bounds(sub)]
    assert starts == [utc(2027, m, 15) for m in (1, 2, 3, 4, 5)]  # none skipped, none doubled
    assert (
        DomainEvent.objects.filter(type="SubscriptionRenewed", tenant_id=sub.tenant_id).count() == 4
    )


@pytest.mark.django_db
def test_one_failing_subscription_does_not_stop_the_sweep(plans, new_tenant, monkeypatch):
    good = subscription_create(tenant_id=new_tenant().pk, plan_code="starter", now=utc(2027, 1, 1))
    bad = subscription_create(tenant_id=new_tenant().pk, plan_code="starter", now=utc(2027, 1, 1))
    from subscriptions import services

    real = services.subscription_renew

    def flaky(*, subscription_id, now=None):
        if subscription_id == bad.pk:
            raise RuntimeError("boom")
        return real(subscription_id=subscription_id, now=now)

    monkeypatch.setattr(services, "subscription_renew", flaky)
    result = subscriptions_renew_due(now=utc(2027, 2, 1))
    assert result["failed"] == 1
    assert SubscriptionPeriod.objects.filter(subscription=good).count() == 2
    assert SubscriptionPeriod.objects.filter(subscription=bad).count() == 1


@pytest.fixture
def committed_subscription(session_tenants, django_db_blocker) -> Iterator[Subscription]:
    """A subscription committed for real, so two database sessions can race on it."""
    with django_db_blocker.unblock():
        from core.audit import SYSTEM
        from subscriptions.catalog import catalog_sync
        from subscriptions.models import Plan
        from tests.conftest import committed_tenants_delete, plans_remove_except
        from tests.subscriptions.conftest import TEST_PLANS

        plans_before = set(Plan.objects.values_list("code", flat=True))
        catalog_sync(data=TEST_PLANS, actor=SYSTEM)
        tenant = tenant_create(
            slug="racer", name="Racer", email="r@example.com", provision=False
        ).tenant
        made = Subscription.objects.filter(tenant=tenant)  # made on commit by the signup event
        SubscriptionPeriod.objects.filter(subscription__in=made).delete()
        made.delete()
        sub = subscription_create(tenant_id=tenant.pk, plan_code="starter", now=utc(2027, 1, 1))
        yield sub
        committed_tenants_delete([tenant.pk])
        plans_remove_except(plans_before)


def test_concurrent_renewal_runs_renew_once(committed_subscription, django_db_blocker):
    """Two workers (two database sessions) sweep at once: each missed period renews once."""
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(
                subscription_renew(subscription_id=committed_subscription.pk, now=utc(2027, 3, 2))
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    with django_db_blocker.unblock():
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        assert sorted(results) == [0, 2]  # one run did both missed periods, the other none
        numbers = list(
            SubscriptionPeriod.objects.filter(subscription=committed_subscription)
            .order_by("number")
            .values_list("number", flat=True)
        )
        assert numbers == [1, 2, 3]
        sub = Subscription.objects.get(pk=committed_subscription.pk)
        assert (sub.current_period_start, sub.status) == (
            utc(2027, 3, 1),
            SubscriptionStatus.ACTIVE,
        )
        connection.close()

"""Two workers invoice the same periods at once: one invoice per period, gapless numbers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connections

from billing.models import Invoice, InvoiceNumberSequence
from billing.services import invoices_generate_due
from subscriptions.models import Plan, Subscription, SubscriptionPeriod
from subscriptions.services import subscription_create
from tenants.services import tenant_create
from tests.billing.conftest import BILLING_PLANS, utc
from tests.conftest import committed_tenants_delete, plans_remove_except


@pytest.fixture
def committed_periods(session_tenants, django_db_blocker) -> Iterator[list[int]]:
    from core.audit import SYSTEM
    from subscriptions.catalog import catalog_sync

    with django_db_blocker.unblock():
        before = dict(InvoiceNumberSequence.objects.values_list("year", "last_number"))
        plans_before = set(Plan.objects.values_list("code", flat=True))
        catalog_sync(data=BILLING_PLANS, actor=SYSTEM)
        tenants = []
        for i in range(6):
            tenant = tenant_create(
                slug=f"racing-{i}", name="R", email="r@example.com", provision=False
            ).tenant
            made = Subscription.objects.filter(tenant=tenant)  # from the signup event, on free
            SubscriptionPeriod.objects.filter(subscription__in=made).delete()
            made.delete()
            subscription_create(tenant_id=tenant.pk, plan_code="bill-basic", now=utc(2025, 1, 1))
            tenants.append(tenant)
        yield [t.pk for t in tenants]
        committed_tenants_delete([t.pk for t in tenants])
        InvoiceNumberSequence.objects.exclude(year__in=before).delete()
        for year, last in before.items():
            InvoiceNumberSequence.objects.filter(year=year).update(last_number=last)
        plans_remove_except(plans_before)


def test_concurrent_invoicing_makes_one_invoice_per_period_with_gapless_numbers(
    committed_periods, django_db_blocker
):
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            # Periods that closed by 2025-02-02: only these six (the session tenants' are later).
            invoices_generate_due(now=utc(2025, 2, 2))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    with django_db_blocker.unblock():
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        invoices = Invoice.objects.filter(tenant_id__in=committed_periods)
        assert invoices.count() == 6
        assert sorted(invoices.values_list("tenant_id", flat=True)) == sorted(committed_periods)
        numbers = sorted(
            int(n.rsplit("-", 1)[1]) for n in invoices.values_list("number", flat=True)
        )
        assert numbers == list(range(numbers[0], numbers[0] + 6))
        connections.close_all()

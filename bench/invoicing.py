"""Invoicing a period for 1,000 and 10,000 subscriptions, against a naive per-period loop.

Makes bench tenants, subscriptions and closed periods with bulk inserts (set-up, not
measured), then times, in one run:
- the beat path (``invoices_generate_due``: set-based batches) for 1,000 and for 10,000 periods;
- the naive path (``invoice_generate_for_period`` one period at a time) for 1,000 periods.
Prints the times, the 10k/1k ratio (target <= 11, i.e. linear), the naive/batch ratio, and
whether 10,000 took under 30 s. Cleans up what it made.

    .venv/bin/python -m config.devstack exec -- .venv/bin/python bench/invoicing.py
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from billing.models import Invoice, InvoiceLine  # noqa: E402
from billing.services import invoice_generate_for_period, invoices_generate_due  # noqa: E402
from core.audit import SYSTEM  # noqa: E402
from subscriptions.catalog import catalog_sync  # noqa: E402
from subscriptions.models import Plan, Subscription, SubscriptionPeriod, SubscriptionStatus  # noqa: E402
from tenants.models import Tenant, TenantStatus  # noqa: E402

PLAN = {
    "plans": [
        {
            "code": "bench-invoicing",
            "name": "Bench",
            "interval": "month",
            "price": 2900,
            "currency": "USD",
            "public": False,
            "quotas": {"api_calls": 1000},
            "overage": {"api_calls": {"unit_price": 1, "unit_size": 1000}},
        }
    ]
}


def make_periods(run: str, label: str, count: int, start: datetime) -> list[int]:
    version = Plan.objects.get(code="bench-invoicing").current_version
    end = start + timedelta(days=31)
    tenants = Tenant.objects.bulk_create(
        [
            Tenant(
                slug=f"bench-{run}-{label}-{i}",
                schema_name=f"t_bench_{run}_{label}_{i}",
                name="Bench",
                contact_email="bench@example.com",
                status=TenantStatus.ACTIVE,
            )
            for i in range(count)
        ]
    )
    subs = Subscription.objects.bulk_create(
        [
            Subscription(
                tenant=t,
                plan_version=version,
                status=SubscriptionStatus.ACTIVE,
                billing_anchor=start,
                current_period_start=start,
                current_period_end=end,
            )
            for t in tenants
        ]
    )
    periods = SubscriptionPeriod.objects.bulk_create(
        [
            SubscriptionPeriod(subscription=s, number=1, start=start, end=end, plan_version=version)
            for s in subs
        ]
    )
    with connection.cursor() as cursor:  # some overage for every tenant, to bill
        cursor.execute(
            "INSERT INTO usage_usagerecord (tenant_id, metric, day, period_start, quantity, updated_at) "
            "SELECT t, 'api_calls', %s, %s, 1000 + t %% 5000, now() FROM unnest(%s::bigint[]) AS t",
            [start.date(), start, [t.pk for t in tenants]],
        )
    return [p.pk for p in periods]


def cleanup(run: str) -> None:
    tenants = list(
        Tenant.objects.filter(slug__startswith=f"bench-{run}-").values_list("pk", flat=True)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM billing_invoiceline WHERE invoice_id IN (SELECT id FROM billing_invoice WHERE tenant_id = ANY(%s))",
            [tenants],
        )
        cursor.execute("DELETE FROM billing_invoice WHERE tenant_id = ANY(%s)", [tenants])
        cursor.execute("DELETE FROM usage_usagerecord WHERE tenant_id = ANY(%s)", [tenants])
        cursor.execute(
            "DELETE FROM subscriptions_subscriptionperiod WHERE subscription_id IN (SELECT id FROM subscriptions_subscription WHERE tenant_id = ANY(%s))",
            [tenants],
        )
        cursor.execute(
            "DELETE FROM subscriptions_subscription WHERE tenant_id = ANY(%s)", [tenants]
        )
        cursor.execute("DELETE FROM core_auditentry WHERE tenant_id = ANY(%s)", [tenants])
        cursor.execute("DELETE FROM core_domainevent WHERE tenant_id = ANY(%s)", [tenants])
        cursor.execute("DELETE FROM tenants_tenant WHERE id = ANY(%s)", [tenants])


def main() -> None:
    call_command("migrate_schemas", interactive=False, verbosity=0)
    catalog_sync(data=PLAN, actor=SYSTEM)
    run = secrets.token_hex(3)
    base = datetime(2030, 1, 1, tzinfo=UTC)
    try:
        naive_ids = make_periods(run, "naive", 1000, base)
        one_k = make_periods(run, "k1", 1000, base + timedelta(days=40))
        ten_k = make_periods(run, "k10", 10000, base + timedelta(days=80))

        started = time.perf_counter()
        for period_id in naive_ids:
            invoice_generate_for_period(period_id=period_id)
        naive = time.perf_counter() - started

        started = time.perf_counter()
        result_1k = invoices_generate_due(now=base + timedelta(days=40 + 32))
        batch_1k = time.perf_counter() - started

        started = time.perf_counter()
        result_10k = invoices_generate_due(now=base + timedelta(days=80 + 32))
        batch_10k = time.perf_counter() - started

        made_1k = Invoice.objects.filter(period_id__in=one_k).count()
        made_10k = Invoice.objects.filter(period_id__in=ten_k).count()
        lines = InvoiceLine.objects.filter(invoice__period_id__in=ten_k).count()
        # (the runs may also invoice other tenants' periods that closed by then: counted apart)
        assert made_1k == 1000 and made_10k == 10000, (made_1k, made_10k, result_1k, result_10k)
        assert result_1k["failed"] == 0 and result_10k["failed"] == 0, (result_1k, result_10k)
        numbers = sorted(
            int(str(n).rsplit("-", 1)[1])
            for n in Invoice.objects.filter(period_id__in=ten_k).values_list("number", flat=True)
        )
        gapless = numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        print(f"naive loop,  1,000 periods: {naive:7.2f} s  ({1000 / naive:,.0f} invoices/s)")
        print(f"batched,     1,000 periods: {batch_1k:7.2f} s  ({1000 / batch_1k:,.0f} invoices/s)")
        print(
            f"batched,    10,000 periods: {batch_10k:7.2f} s  ({10000 / batch_10k:,.0f} invoices/s, {lines} lines)"
        )
        print(
            f"10k / 1k ratio:             {batch_10k / batch_1k:7.2f}   (target <= 11: {'met' if batch_10k / batch_1k <= 11 else 'NOT met'})"
        )
        print(f"naive / batched (1k):       {naive / batch_1k:7.2f}x")
        print(f"10,000 under 30 s:          {'yes' if batch_10k < 30 else 'NO'}")
        print(f"numbers gapless (10k):      {'yes' if gapless else 'NO'}")
    finally:
        cleanup(run)


if __name__ == "__main__":
    main()

from __future__ import annotations

import pytest
import time_machine
from django.db import connection

from billing.models import Invoice, InvoiceStatus
from billing.services import invoice_generate_for_period, invoices_generate_due, overage_amount
from core.audit import Actor
from subscriptions.models import SubscriptionPeriod
from subscriptions.services import subscription_change, subscriptions_renew_due
from tests.billing.conftest import utc

pytestmark = pytest.mark.django_db

STAFF = Actor("staff", "tester")


def add_usage(tenant, period_start, **quantities):
    with connection.cursor() as cursor:
        for metric, quantity in quantities.items():
            cursor.execute(
                "INSERT INTO usage_usagerecord (tenant_id, metric, day, period_start, quantity, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, now())",
                [tenant.pk, metric, period_start.date(), period_start, quantity],
            )


def test_overage_is_rounded_once_half_up():
    assert overage_amount(used=1500, limit=1000, unit_price=1, unit_size=1000) == (
        500,
        1,
    )  # 0.5 -> 1
    assert overage_amount(used=1499, limit=1000, unit_price=1, unit_size=1000) == (
        499,
        0,
    )  # 0.499 -> 0
    assert overage_amount(used=25, limit=10, unit_price=333, unit_size=10) == (
        15,
        500,
    )  # 499.5 -> 500
    assert overage_amount(used=5, limit=10, unit_price=333, unit_size=10) == (0, 0)


def test_a_closed_period_is_invoiced_with_base_fee_proration_and_overage(billed_tenant):
    tenant, sub = billed_tenant()
    tenant.config = {"tax_rate_bps": 1900}
    tenant.save()
    subscription_change(
        tenant_id=tenant.pk, plan_code="bill-plus", actor=STAFF, now=utc(2027, 1, 16)
    )
    add_usage(tenant, utc(2027, 1, 1), api_calls=2500, widgets=25)
    period = SubscriptionPeriod.objects.get(subscription=sub, number=1)
    invoice = invoice_generate_for_period(period_id=period.pk)
    lines = [(line.kind, line.amount) for line in invoice.lines.all()]
    # Base fee of the period's plan (basic, 10.00), proration from the change on Jan 16
    # (-516 and +2581, see the subscriptions tests), overage: 1,500 calls at 1 cent per 1,000 =
    # 1.5 -> 2; 15 widgets at 3.33 per 10 = 4.995 -> 5.00 (rounded once per line, half-up).
    assert lines == [
        ("base_fee", 1000),
        ("proration_credit", -516),
        ("proration_charge", 2581),
        ("overage", 2),
        ("overage", 500),
    ]
    assert invoice.subtotal == 3567
    assert invoice.tax == 678  # 19 % of 35.67 = 6.7773 -> 6.78
    assert (invoice.total, invoice.amount_due) == (4245, 4245)
    assert invoice.status == InvoiceStatus.OPEN
    assert invoice.number.startswith("INV-")
    # Pending items are invoiced once.
    assert not sub.pending_items.filter(invoiced_at__isnull=True).exists()


def test_generation_is_idempotent(billed_tenant):
    _, sub = billed_tenant()
    period = SubscriptionPeriod.objects.get(subscription=sub, number=1)
    first = invoice_generate_for_period(period_id=period.pk)
    again = invoice_generate_for_period(period_id=period.pk)
    assert first.pk == again.pk
    assert Invoice.objects.filter(period=period).count() == 1


def test_trial_periods_are_not_invoiced(billing_plans, session_tenants):
    from subscriptions.services import subscription_create
    from tenants.services import tenant_create

    tenant = tenant_create(slug="trialist", name="T", email="t@example.com", provision=False).tenant
    sub = subscription_create(tenant_id=tenant.pk, plan_code="pro", now=utc(2027, 1, 1))
    period = SubscriptionPeriod.objects.get(subscription=sub, number=1)
    assert period.is_trial
    assert invoice_generate_for_period(period_id=period.pk) is None


def test_the_sweep_invoices_each_closed_period_once_catching_up(billed_tenant):
    tenant, _ = billed_tenant(start=utc(2027, 1, 31))
    with time_machine.travel(utc(2027, 4, 1), tick=False):
        subscriptions_renew_due()
        first = invoices_generate_due()
        second = invoices_generate_due()
    assert first["failed"] == 0
    assert second["invoiced"] == 0
    invoices = Invoice.objects.filter(tenant=tenant).order_by("period_start")
    assert [(i.period_start, i.period_end) for i in invoices] == [
        (utc(2027, 1, 31), utc(2027, 2, 28)),
        (utc(2027, 2, 28), utc(2027, 3, 31)),
    ]
    numbers = [
        int(i.number.rsplit("-", 1)[1])
        for i in Invoice.objects.exclude(number=None).order_by("number")
    ]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # gapless


def test_one_failing_period_does_not_stop_the_run(billed_tenant, monkeypatch):
    from billing import services

    (_, good), (bad_tenant, bad) = billed_tenant(), billed_tenant()
    real = services._tax_rate_bps

    def flaky(tenant):
        if tenant.pk == bad_tenant.pk:
            raise RuntimeError("boom")
        return real(tenant)

    monkeypatch.setattr(services, "_tax_rate_bps", flaky)
    result = invoices_generate_due(now=utc(2027, 2, 2))
    assert result["failed"] == 1  # the batch failed, then each period was tried on its own
    assert Invoice.objects.filter(subscription=good).count() == 1
    assert Invoice.objects.filter(subscription=bad).count() == 0


def test_zero_total_invoices_are_paid_at_once(billing_plans, session_tenants):
    from subscriptions.services import subscription_create
    from tenants.services import tenant_create

    tenant = tenant_create(
        slug="freeloader", name="F", email="f@example.com", provision=False
    ).tenant
    sub = subscription_create(tenant_id=tenant.pk, plan_code="free", now=utc(2027, 1, 1))
    invoice = invoice_generate_for_period(
        period_id=SubscriptionPeriod.objects.get(subscription=sub).pk
    )
    assert (invoice.status, invoice.total, invoice.amount_due) == (InvoiceStatus.PAID, 0, 0)

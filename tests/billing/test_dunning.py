"""The full dunning path through the real Stripe gateway (Stripe's HTTP API answered on
``responses`` with its documented shapes), moved through time with time-machine."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from billing.models import InvoiceStatus, PaymentStatus
from billing.services import invoice_generate_for_period, invoice_mark_paid, invoices_retry_due
from core.audit import Actor
from core.models import DomainEvent
from subscriptions.models import (
    CURRENT_STATUSES,
    Plan,
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
)
from tenants.models import Tenant, TenantStatus
from tests.billing import stripe_fixtures as sf
from tests.billing.test_stripe_gateway import with_card

pytestmark = pytest.mark.django_db

STAFF = Actor("staff", "tester")


def decline(fake_stripe, card_id):
    declined = sf.payment_intent(
        amount=1000,
        payment_method=None,
        status="requires_payment_method",
        last_payment_error=sf.last_payment_error(decline_code="insufficient_funds"),
    )
    fake_stripe.payment_intent_outcome = lambda form: fake_stripe._reply(
        402, sf.card_error(payment_intent=declined, payment_method=fake_stripe.get(card_id))
    )


def succeed(fake_stripe):
    fake_stripe.payment_intent_outcome = None  # the fake confirms the intent: succeeded


@pytest.fixture
def billed_alpha(alpha, billing_plans, fake, django_capture_on_commit_callbacks):
    """Alpha on bill-basic with a saved card, and the invoice of a closed period, open."""
    sub = Subscription.objects.get(tenant=alpha.tenant, status__in=CURRENT_STATUSES)
    sub.plan_version = Plan.objects.get(code="bill-basic").current_version
    sub.save()
    _, card_id = with_card(fake, alpha.tenant)
    start = sub.current_period_start - timedelta(days=31)
    period = SubscriptionPeriod.objects.create(
        subscription=sub,
        number=90,
        start=start,
        end=sub.current_period_start,
        plan_version=sub.plan_version,
    )
    invoice = invoice_generate_for_period(period_id=period.pk)
    assert invoice.status == InvoiceStatus.OPEN
    assert invoice.next_payment_attempt_at is not None  # Stripe collects it
    return alpha, sub, invoice, card_id


def api_status(t):
    return (
        Client(HTTP_HOST=t.host, HTTP_AUTHORIZATION=f"Bearer {t.api_key}")
        .get("/api/v1/tenant/")
        .status_code
    )


def test_failed_payments_retry_on_schedule_then_suspend_and_expire(
    billed_alpha, fake, django_capture_on_commit_callbacks
):
    alpha, sub, invoice, card_id = billed_alpha
    decline(fake, card_id)
    t0 = timezone.now()
    schedule = [0, 1, 3, 5, 7]  # the first attempt, then after 1, 3, 5 and 7 days
    for i, day in enumerate(schedule):
        with (
            time_machine.travel(t0 + timedelta(days=day, minutes=1), tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            assert invoices_retry_due()["attempted"] == 1
            # Not due again until the next step of the schedule.
            assert invoices_retry_due()["attempted"] == 0
        invoice.refresh_from_db()
        sub.refresh_from_db()
        if i < len(schedule) - 1:
            assert invoice.status == InvoiceStatus.OPEN
            assert sub.status == SubscriptionStatus.PAST_DUE
            expected_next = invoice.first_failed_at + timedelta(days=schedule[i + 1])
            assert invoice.next_payment_attempt_at == expected_next
            assert api_status(alpha) == 200  # still working within the grace
    assert invoice.status == InvoiceStatus.UNCOLLECTIBLE
    assert invoice.next_payment_attempt_at is None
    assert [p.status for p in invoice.payments.order_by("attempt")] == [PaymentStatus.FAILED] * 5
    keys = [r.headers["Idempotency-Key"] for r in fake.requests("POST", "/v1/payment_intents")]
    assert keys == [f"invoice-{invoice.pk}-attempt-{n}" for n in range(1, 6)]  # one per attempt
    assert sub.status == SubscriptionStatus.EXPIRED
    assert Tenant.objects.get(pk=alpha.tenant.pk).status == TenantStatus.SUSPENDED
    assert api_status(alpha) == 403
    assert DomainEvent.objects.filter(type="PaymentFailed", tenant_id=alpha.tenant.pk).count() == 5
    assert DomainEvent.objects.filter(type="TenantSuspended", tenant_id=alpha.tenant.pk).exists()

    # Paid after all (a bank transfer staff record): invoice paid, tenant and subscription back.
    with django_capture_on_commit_callbacks(execute=True):
        invoice_mark_paid(invoice_id=invoice.pk, actor=STAFF, reason="wire received")
    invoice.refresh_from_db()
    sub.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert sub.status == SubscriptionStatus.ACTIVE
    assert Tenant.objects.get(pk=alpha.tenant.pk).status == TenantStatus.ACTIVE
    assert api_status(alpha) == 200


def test_a_payment_during_dunning_pays_and_cancels_the_retries(
    billed_alpha, fake, django_capture_on_commit_callbacks
):
    _, sub, invoice, card_id = billed_alpha
    decline(fake, card_id)
    t0 = timezone.now()
    with (
        time_machine.travel(t0 + timedelta(minutes=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        invoices_retry_due()
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.PAST_DUE
    succeed(fake)  # the customer fixed the card
    with (
        time_machine.travel(t0 + timedelta(days=1, minutes=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert invoices_retry_due()["attempted"] == 1
    invoice.refresh_from_db()
    sub.refresh_from_db()
    assert (invoice.status, invoice.amount_due, invoice.next_payment_attempt_at) == (
        InvoiceStatus.PAID,
        0,
        None,
    )
    assert sub.status == SubscriptionStatus.ACTIVE
    assert DomainEvent.objects.filter(type="InvoicePaid", payload__number=invoice.number).exists()
    with time_machine.travel(t0 + timedelta(days=3, minutes=1), tick=False):
        assert invoices_retry_due()["attempted"] == 0  # no retry left pending


def test_stripe_unreachable_retries_the_same_attempt_with_the_same_key(billed_alpha, fake):
    invoice = billed_alpha[2]
    fake.outage("POST", "/v1/payment_intents")
    t0 = timezone.now()
    with time_machine.travel(t0 + timedelta(minutes=1), tick=False):
        assert invoices_retry_due()["failed"] == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN
    assert invoice.next_payment_attempt_at is not None
    fake.outages.clear()
    with time_machine.travel(t0 + timedelta(minutes=7), tick=False):
        assert invoices_retry_due()["attempted"] == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.payments.count() == 1  # one attempt, retried under its own key
    keys = {r.headers["Idempotency-Key"] for r in fake.requests("POST", "/v1/payment_intents")}
    assert keys == {f"invoice-{invoice.pk}-attempt-1"}

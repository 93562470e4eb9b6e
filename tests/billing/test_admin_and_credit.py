from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing.models import InvoiceStatus
from billing.services import credit_note_issue, invoice_generate_for_period, invoice_pay
from core.audit import Actor
from core.models import AuditEntry
from subscriptions.models import CURRENT_STATUSES, Plan, Subscription, SubscriptionPeriod
from tests.billing.test_stripe_gateway import with_card

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser(
        "biller", "b@example.com", "pw-unused-elsewhere"
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


@pytest.fixture
def open_invoice(alpha, billing_plans):
    sub = Subscription.objects.get(tenant=alpha.tenant, status__in=CURRENT_STATUSES)
    sub.plan_version = Plan.objects.get(code="bill-basic").current_version
    sub.save()
    start = sub.current_period_start - timedelta(days=31)
    period = SubscriptionPeriod.objects.create(
        subscription=sub,
        number=80,
        start=start,
        end=sub.current_period_start,
        plan_version=sub.plan_version,
    )
    return invoice_generate_for_period(period_id=period.pk)


def test_invoice_admin_lists_filters_and_voids_with_a_reason(staff_client, open_invoice):
    listing = staff_client.get("/admin/billing/invoice/", {"status__exact": "open"})
    assert listing.status_code == 200
    assert open_invoice.number.encode() in listing.content
    url = "/admin/billing/invoice/"
    ask = staff_client.post(url, {"action": "void", "_selected_action": [open_invoice.pk]})
    assert b"give a reason" in ask.content
    done = staff_client.post(
        url,
        {
            "action": "void",
            "_selected_action": [open_invoice.pk],
            "apply": "1",
            "reason": "sent twice",
        },
    )
    assert done.status_code == 302
    open_invoice.refresh_from_db()
    assert (open_invoice.status, open_invoice.void_reason) == (InvoiceStatus.VOID, "sent twice")
    assert AuditEntry.objects.get(action="invoice.void").actor == "staff:biller"


def test_invoice_admin_mark_paid_and_credit_note(staff_client, open_invoice):
    url = "/admin/billing/invoice/"
    staff_client.post(
        url,
        {
            "action": "mark_paid",
            "_selected_action": [open_invoice.pk],
            "apply": "1",
            "reason": "wire 42",
        },
    )
    open_invoice.refresh_from_db()
    assert open_invoice.status == InvoiceStatus.PAID
    staff_client.post(
        url,
        {
            "action": "credit_note",
            "_selected_action": [open_invoice.pk],
            "apply": "1",
            "reason": "goodwill",
            "amount": "250",
        },
    )
    assert list(open_invoice.credit_notes.values_list("amount", flat=True)) == [250]


def test_payments_and_stripe_events_are_visible_read_only(staff_client):
    assert staff_client.get("/admin/billing/payment/").status_code == 200
    assert staff_client.get("/admin/billing/payment/add/").status_code == 403
    assert staff_client.get("/admin/djstripe/event/").status_code == 200


def test_a_credit_note_refunds_through_stripe(fake, alpha, open_invoice, settings):
    with_card(fake, alpha.tenant)
    paid = invoice_pay(invoice_id=open_invoice.pk)
    assert paid.invoice.status == InvoiceStatus.PAID
    note = credit_note_issue(
        invoice_id=open_invoice.pk, amount=400, reason="partial refund", actor=Actor("staff", "t")
    )
    (refund_call,) = fake.requests("POST", "/v1/refunds")
    form = fake.form(refund_call)
    assert (form["payment_intent"], form["amount"]) == (paid.payment.external_id, "400")
    assert refund_call.headers["Idempotency-Key"] == f"credit-note-{note.pk}"
    assert note.refund_external_id.startswith("re_")

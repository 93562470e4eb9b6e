from __future__ import annotations

import pytest

from billing.models import InvoiceStatus
from billing.services import (
    credit_note_issue,
    invoice_generate_for_period,
    invoice_mark_paid,
    invoice_void,
)
from core.audit import Actor
from core.errors import Conflict, InvalidInput
from core.models import AuditEntry, DomainEvent
from subscriptions.models import CURRENT_STATUSES, Plan, Subscription, SubscriptionPeriod
from tests.billing.conftest import utc

pytestmark = pytest.mark.django_db

STAFF = Actor("staff", "tester")


@pytest.fixture
def alpha_invoice(alpha, billing_plans):
    """An open invoice of alpha (the manual gateway: no Stripe key in tests by default)."""
    sub = Subscription.objects.get(tenant=alpha.tenant, status__in=CURRENT_STATUSES)
    sub.plan_version = Plan.objects.get(code="bill-basic").current_version
    sub.save()
    period = SubscriptionPeriod.objects.create(
        subscription=sub,
        number=99,
        start=utc(2026, 1, 1),
        end=utc(2026, 2, 1),
        plan_version=sub.plan_version,
    )
    return invoice_generate_for_period(period_id=period.pk)


def test_manual_mark_paid_void_and_credit_note(alpha_invoice):
    assert alpha_invoice.status == InvoiceStatus.OPEN
    assert alpha_invoice.next_payment_attempt_at is None  # nothing to charge online
    paid = invoice_mark_paid(invoice_id=alpha_invoice.pk, actor=STAFF, reason="wire 123")
    assert (paid.status, paid.amount_due, paid.amount_paid) == (InvoiceStatus.PAID, 0, 1000)
    assert DomainEvent.objects.filter(type="InvoicePaid", payload__number=paid.number).exists()
    with pytest.raises(Conflict):
        invoice_void(invoice_id=paid.pk, actor=STAFF, reason="too late")
    note = credit_note_issue(invoice_id=paid.pk, amount=400, reason="goodwill", actor=STAFF)
    assert note.number.startswith("CN-")
    with pytest.raises(InvalidInput) as too_much:
        credit_note_issue(invoice_id=paid.pk, amount=601, reason="more", actor=STAFF)
    assert too_much.value.details == {"available": 600}
    assert AuditEntry.objects.filter(action="invoice.credit_note", reason="goodwill").exists()


def test_void_needs_an_open_invoice_and_a_reason(alpha_invoice):
    with pytest.raises(InvalidInput):
        invoice_void(invoice_id=alpha_invoice.pk, actor=STAFF, reason=" ")
    voided = invoice_void(invoice_id=alpha_invoice.pk, actor=STAFF, reason="duplicate")
    assert (voided.status, voided.void_reason) == (InvoiceStatus.VOID, "duplicate")


def test_invoice_api_lists_filters_and_shows(alpha_client, alpha_invoice):
    listing = alpha_client.get("/api/v1/invoices/")
    assert listing.status_code == 200
    assert [i["number"] for i in listing.json()["results"]] == [alpha_invoice.number]
    assert alpha_client.get("/api/v1/invoices/", {"status": "paid"}).json()["results"] == []
    bad = alpha_client.get("/api/v1/invoices/", {"status": "nope"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_status")
    detail = alpha_client.get(f"/api/v1/invoices/{alpha_invoice.number}/").json()
    assert detail["total"] == 1000
    assert detail["lines"][0]["kind"] == "base_fee"


def test_another_tenants_invoice_is_404(beta_client, alpha_invoice):
    for suffix in ("", "pdf/", "html/"):
        response = beta_client.get(f"/api/v1/invoices/{alpha_invoice.number}/{suffix}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "invoice_not_found"
    assert beta_client.post(f"/api/v1/invoices/{alpha_invoice.number}/pay/").status_code == 404


def test_invoice_pdf_and_html(alpha_client, alpha_invoice):
    pdf = alpha_client.get(f"/api/v1/invoices/{alpha_invoice.number}/pdf/")
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    html = alpha_client.get(f"/api/v1/invoices/{alpha_invoice.number}/html/")
    assert alpha_invoice.number.encode() in html.content
    assert b"10.00 USD" in html.content
    assert b"Alpha" in html.content


def test_pay_with_the_manual_gateway_is_409(alpha_client, alpha_invoice):
    response = alpha_client.post(f"/api/v1/invoices/{alpha_invoice.number}/pay/")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "gateway_manual")
    setup = alpha_client.post(
        "/api/v1/billing/setup-session/",
        {"success_url": "https://a.example/ok", "cancel_url": "https://a.example/no"},
        format="json",
    )
    assert (setup.status_code, setup.json()["error"]["code"]) == (409, "gateway_manual")


def test_invoices_stay_readable_with_an_inactive_subscription(
    alpha, alpha_client, alpha_invoice, django_capture_on_commit_callbacks
):
    from subscriptions.services import subscription_cancel

    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(tenant_id=alpha.tenant.pk, at_period_end=False, actor=STAFF)
    assert alpha_client.get("/api/v1/api-keys/").status_code == 402
    assert alpha_client.get("/api/v1/invoices/").status_code == 200
    assert alpha_client.get(f"/api/v1/invoices/{alpha_invoice.number}/pdf/").status_code == 200


def test_one_off_adjustment_invoice_takes_the_next_number(alpha, alpha_invoice):
    from billing.services import invoice_create_one_off

    invoice = invoice_create_one_off(
        tenant_id=alpha.tenant.pk,
        lines=[("Setup fee", 5000), ("Launch discount", -1250)],
        currency="USD",
        actor=STAFF,
        reason="onboarding",
    )
    assert [(line.kind, line.amount) for line in invoice.lines.all()] == [
        ("adjustment", 5000),
        ("adjustment", -1250),
    ]
    assert (invoice.subtotal, invoice.total, invoice.status) == (3750, 3750, InvoiceStatus.OPEN)
    previous = int(alpha_invoice.number.rsplit("-", 1)[1])
    assert invoice.number == f"{alpha_invoice.number.rsplit('-', 1)[0]}-{previous + 1:06d}"
    with pytest.raises(InvalidInput):
        invoice_create_one_off(
            tenant_id=alpha.tenant.pk, lines=[], currency="USD", actor=STAFF, reason="x"
        )

"""The Stripe gateway against Stripe's HTTP API (answered through ``responses``)."""

from __future__ import annotations

import itertools

import pytest
from djstripe.models import Customer

from billing.gateways import get_gateway
from billing.gateways.manual import ManualGateway
from billing.gateways.stripe import StripeGateway
from billing.models import Invoice, InvoiceStatus, Payment, PaymentStatus
from billing.stripe_customers import stripe_customer_ensure
from core.errors import Conflict, ServiceUnavailable
from subscriptions.services import subscription_create
from tenants.services import tenant_create
from tests.billing import stripe_fixtures as sf

pytestmark = pytest.mark.django_db

_slugs = itertools.count(1)


@pytest.fixture
def tenant(session_tenants, db):
    made = tenant_create(
        slug=f"stripe-gw-{next(_slugs)}",
        name="Card Co",
        email="owner@card.example",
        provision=False,
    ).tenant
    subscription_create(tenant_id=made.pk)
    return made


def open_invoice(tenant, *, total: int = 1000, currency: str = "USD") -> Invoice:
    return Invoice.objects.create(
        tenant=tenant,
        number=f"INV-T-{next(_slugs):05d}",
        status=InvoiceStatus.OPEN,
        currency=currency,
        subtotal=total,
        tax=0,
        total=total,
        amount_due=total,
    )


def with_card(fake: sf.FakeStripe, tenant) -> tuple[str, str]:
    """The tenant's Stripe customer with a saved default card, as Stripe holds them."""
    customer_id = stripe_customer_ensure(tenant_id=tenant.pk)
    card = fake.put(sf.payment_method(customer=customer_id))
    fake.get(customer_id)["invoice_settings"]["default_payment_method"] = card["id"]
    return customer_id, card["id"]


def test_get_gateway_is_stripe_with_a_key_and_manual_without(settings):
    settings.STRIPE_SECRET_KEY = ""
    assert isinstance(get_gateway(), ManualGateway)
    settings.STRIPE_SECRET_KEY = sf.SECRET_KEY
    assert isinstance(get_gateway(), StripeGateway)


def test_customer_is_created_once_with_its_idempotency_key_and_synced(fake, tenant):
    customer_id = stripe_customer_ensure(tenant_id=tenant.pk)
    assert stripe_customer_ensure(tenant_id=tenant.pk) == customer_id

    (create,) = fake.requests("POST", "/v1/customers")
    assert create.headers["Idempotency-Key"] == f"customer-{tenant.pk}"
    assert create.headers["Authorization"] == f"Bearer {sf.SECRET_KEY}"
    form = fake.form(create)
    assert form["email"] == "owner@card.example"
    assert form["name"] == "Card Co"
    assert form["metadata[djstripe_subscriber]"] == str(tenant.pk)
    # dj-stripe looked up the owning account through the API and linked the subscriber.
    assert fake.requests("GET", "/v1/account")
    synced = Customer.objects.get(id=customer_id)
    assert synced.subscriber_id == tenant.pk
    assert synced.djstripe_owner_account.id == sf.ACCOUNT_ID


def test_a_deleted_customer_is_replaced_under_a_new_idempotency_key(fake, tenant):
    first = stripe_customer_ensure(tenant_id=tenant.pk)
    fake.objects[first] = sf.deleted_customer(first)
    Customer.objects.get(id=first).purge()  # what dj-stripe does on customer.deleted
    second = stripe_customer_ensure(tenant_id=tenant.pk)
    assert second != first
    keys = [r.headers["Idempotency-Key"] for r in fake.requests("POST", "/v1/customers")]
    assert keys == [f"customer-{tenant.pk}", f"customer-{tenant.pk}-1"]


def test_charge_is_an_off_session_payment_intent_with_the_invoice_key(fake, tenant):
    customer_id, card_id = with_card(fake, tenant)
    invoice = open_invoice(tenant, total=2599, currency="EUR")

    result = StripeGateway().charge(
        invoice=invoice, amount=2599, idempotency_key=f"invoice-{invoice.pk}-attempt-1"
    )

    (create,) = fake.requests("POST", "/v1/payment_intents")
    assert create.headers["Idempotency-Key"] == f"invoice-{invoice.pk}-attempt-1"
    form = fake.form(create)
    assert form["amount"] == "2599"
    assert form["currency"] == "eur"
    assert form["customer"] == customer_id
    assert form["payment_method"] == card_id
    assert form["off_session"] == "true"
    assert form["confirm"] == "true"
    assert form["metadata[invoice_id]"] == str(invoice.pk)
    assert form["metadata[invoice_number]"] == invoice.number
    assert result.status == "succeeded"
    assert result.external_id.startswith("pi_")
    assert fake.get(result.external_id)["status"] == "succeeded"


def test_a_retried_charge_sends_the_same_key_and_charges_once(fake, tenant):
    with_card(fake, tenant)
    invoice = open_invoice(tenant)
    gateway = StripeGateway()
    key = f"invoice-{invoice.pk}-attempt-1"

    first = gateway.charge(invoice=invoice, amount=1000, idempotency_key=key)
    again = gateway.charge(invoice=invoice, amount=1000, idempotency_key=key)
    next_attempt = gateway.charge(
        invoice=invoice, amount=1000, idempotency_key=f"invoice-{invoice.pk}-attempt-2"
    )

    sent = [r.headers["Idempotency-Key"] for r in fake.requests("POST", "/v1/payment_intents")]
    assert sent == [key, key, f"invoice-{invoice.pk}-attempt-2"]
    assert again == first  # Stripe answered the retry with the first PaymentIntent
    intents = [o for o in fake.objects.values() if o["object"] == "payment_intent"]
    assert len(intents) == 2
    assert next_attempt.external_id != first.external_id


def test_card_declined_is_a_failed_result_with_stripes_code_and_message(fake, tenant):
    customer_id, card_id = with_card(fake, tenant)
    invoice = open_invoice(tenant)
    declined = sf.payment_intent(
        amount=1000,
        customer=customer_id,
        payment_method=None,
        status="requires_payment_method",
        last_payment_error=sf.last_payment_error(decline_code="insufficient_funds"),
    )
    fake.payment_intent_outcome = lambda form: fake._reply(
        402,
        sf.card_error(payment_intent=declined, payment_method=fake.get(card_id)),
    )

    result = StripeGateway().charge(invoice=invoice, amount=1000, idempotency_key="k-declined")

    assert result.status == "failed"
    assert result.failure_code == "card_declined"
    assert result.failure_message == "Your card has insufficient funds."
    assert result.external_id == declined["id"]


@pytest.mark.parametrize(
    ("stripe_status", "expected"),
    [("processing", "pending"), ("requires_action", "failed"), ("canceled", "failed")],
)
def test_other_payment_intent_statuses(fake, tenant, stripe_status, expected):
    customer_id, card_id = with_card(fake, tenant)
    invoice = open_invoice(tenant)
    intent = sf.payment_intent(customer=customer_id, payment_method=card_id, status=stripe_status)
    fake.payment_intent_outcome = lambda form: fake._reply(200, fake.put(intent))

    result = StripeGateway().charge(invoice=invoice, amount=1000, idempotency_key="k-status")

    assert (result.status, result.external_id) == (expected, intent["id"])
    if expected == "failed":
        assert result.failure_code == stripe_status


def test_no_default_payment_method_fails_without_calling_stripe_to_charge(fake, tenant):
    stripe_customer_ensure(tenant_id=tenant.pk)
    result = StripeGateway().charge(invoice=open_invoice(tenant), amount=1000, idempotency_key="k")
    assert (result.status, result.failure_code) == ("failed", "no_payment_method")
    assert fake.requests("POST", "/v1/payment_intents") == []


def test_an_unreachable_stripe_raises_so_the_same_key_is_retried(fake, tenant):
    with_card(fake, tenant)
    error = {"error": {"message": "An unknown error occurred", "type": "api_error"}}
    fake.payment_intent_outcome = lambda form: fake._reply(500, error)
    with pytest.raises(ServiceUnavailable) as raised:
        StripeGateway().charge(invoice=open_invoice(tenant), amount=1000, idempotency_key="k-5xx")
    assert raised.value.code == "gateway_unavailable"


def test_invoice_pay_through_stripe_pays_the_invoice(fake, tenant):
    from billing.services import idempotency_key, invoice_pay

    with_card(fake, tenant)
    invoice = open_invoice(tenant, total=1500)

    result = invoice_pay(invoice_id=invoice.pk)

    assert result.invoice.status == InvoiceStatus.PAID
    assert result.payment.status == PaymentStatus.SUCCEEDED
    assert result.payment.gateway == "stripe"
    (create,) = fake.requests("POST", "/v1/payment_intents")
    assert create.headers["Idempotency-Key"] == idempotency_key(invoice, 1)
    assert fake.get(result.payment.external_id)["metadata"]["invoice_id"] == str(invoice.pk)


def test_refund_targets_the_payment_intent_with_the_key(fake, tenant):
    customer_id, card_id = with_card(fake, tenant)
    invoice = open_invoice(tenant)
    intent = fake.put(
        sf.payment_intent(customer=customer_id, payment_method=card_id, latest_charge="ch_T1")
    )
    payment = Payment.objects.create(
        invoice=invoice,
        attempt=1,
        gateway="stripe",
        idempotency_key=f"invoice-{invoice.pk}-attempt-1",
        external_id=intent["id"],
        status=PaymentStatus.SUCCEEDED,
        amount=1000,
        currency="USD",
    )

    result = StripeGateway().refund(payment=payment, amount=400, idempotency_key="refund-cn-1")

    (create,) = fake.requests("POST", "/v1/refunds")
    assert create.headers["Idempotency-Key"] == "refund-cn-1"
    form = fake.form(create)
    assert (form["payment_intent"], form["amount"]) == (intent["id"], "400")
    assert result.external_id.startswith("re_")
    assert fake.get(result.external_id)["amount"] == 400


def test_refund_of_an_unknown_intent_is_a_conflict(fake, tenant):
    invoice = open_invoice(tenant)
    payment = Payment.objects.create(
        invoice=invoice,
        attempt=1,
        gateway="stripe",
        idempotency_key="k-unknown",
        external_id="pi_missing",
        amount=1000,
        currency="USD",
    )
    with pytest.raises(Conflict) as raised:
        StripeGateway().refund(payment=payment, amount=100, idempotency_key="refund-x")
    assert raised.value.code == "refund_rejected"


def test_setup_session_url_is_a_checkout_session_in_setup_mode(fake, tenant):
    url = StripeGateway().setup_session_url(
        tenant_id=tenant.pk,
        success_url="https://app.example/billing/saved",
        cancel_url="https://app.example/billing",
    )

    (create,) = fake.requests("POST", "/v1/checkout/sessions")
    form = fake.form(create)
    assert form["mode"] == "setup"
    assert form["customer"] == Customer.objects.get(subscriber=tenant).id
    assert form["payment_method_types[0]"] == "card"
    assert form["success_url"] == "https://app.example/billing/saved"
    assert form["cancel_url"] == "https://app.example/billing"
    assert url.startswith("https://checkout.stripe.com/c/pay/cs_test_")

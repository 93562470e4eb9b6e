"""``POST /stripe/webhook/``: Stripe-signed bodies through dj-stripe's retrieve-and-sync path
(the Stripe API answered through ``responses``) into our billing and subscription services."""

from __future__ import annotations

import itertools
import json
import time
import uuid

import pytest
import responses
import stripe
import time_machine
from django.test import Client
from django.urls import resolve, reverse
from djstripe.models import Customer, Event, PaymentIntent, WebhookEndpoint, WebhookEventTrigger

from billing.models import Invoice, InvoiceStatus, Payment, PaymentStatus
from billing.stripe_customers import stripe_customer_ensure
from billing.stripe_webhooks import stripe_webhook
from core.models import AuditEntry
from subscriptions.models import CURRENT_STATUSES, Subscription
from subscriptions.services import subscription_create
from tenants.services import tenant_create
from tests.billing import stripe_fixtures as sf

pytestmark = pytest.mark.django_db

URL = "/stripe/webhook/"
_slugs = itertools.count(1)


@pytest.fixture
def fake(settings, monkeypatch):
    settings.STRIPE_SECRET_KEY = sf.SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = sf.WEBHOOK_SECRET
    monkeypatch.setattr(stripe, "api_base", sf.API_BASE)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    monkeypatch.setattr(stripe, "default_http_client", stripe.RequestsClient())
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield sf.FakeStripe(rsps)


@pytest.fixture
def client() -> Client:
    return Client(HTTP_HOST="localhost", enforce_csrf_checks=True)  # Stripe sends no CSRF token


@pytest.fixture
def tenant(session_tenants, db):
    made = tenant_create(
        slug=f"stripe-wh-{next(_slugs)}",
        name="Hook Co",
        email="owner@hook.example",
        provision=False,
    ).tenant
    subscription_create(tenant_id=made.pk)
    return made


def deliver(client: Client, evt: dict, *, secret: str = sf.WEBHOOK_SECRET, timestamp=None, url=URL):
    body = json.dumps(evt)
    return client.post(
        url,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sf.sign(body, secret=secret, timestamp=timestamp),
    )


def has_payment_method(tenant) -> bool:
    return Subscription.objects.get(tenant=tenant, status__in=CURRENT_STATUSES).has_payment_method


def stripe_customer(fake: sf.FakeStripe, tenant) -> str:
    return stripe_customer_ensure(tenant_id=tenant.pk)


def pending_payment(fake: sf.FakeStripe, tenant, *, amount: int = 1000):
    """An open invoice with a pending Stripe payment, and its PaymentIntent as Stripe holds it."""
    customer_id = stripe_customer(fake, tenant)
    card = fake.put(sf.payment_method(customer=customer_id))
    invoice = Invoice.objects.create(
        tenant=tenant,
        number=f"INV-W-{next(_slugs):05d}",
        status=InvoiceStatus.OPEN,
        currency="USD",
        subtotal=amount,
        tax=0,
        total=amount,
        amount_due=amount,
        payment_attempts=1,
    )
    intent = fake.put(
        sf.payment_intent(
            amount=amount,
            customer=customer_id,
            payment_method=card["id"],
            metadata={"invoice_id": str(invoice.pk), "invoice_number": invoice.number or ""},
        )
    )
    payment = Payment.objects.create(
        invoice=invoice,
        attempt=1,
        gateway="stripe",
        idempotency_key=f"invoice-{invoice.pk}-attempt-1",
        external_id=intent["id"],
        amount=amount,
        currency="USD",
    )
    return invoice, payment, intent


# --- signatures ------------------------------------------------------------------------------


def test_a_valid_event_is_stored_synced_and_applied(fake, client, tenant):
    invoice, payment, intent = pending_payment(fake, tenant)
    evt = sf.event("payment_intent.succeeded", intent)

    response = deliver(client, evt)

    assert response.status_code == 200, response.content
    assert response.json() == {"id": evt["id"], "status": "processed"}
    assert Event.objects.get(id=evt["id"]).type == "payment_intent.succeeded"
    # dj-stripe re-retrieved the PaymentIntent and synced it.
    assert fake.requests("GET", f"/v1/payment_intents/{intent['id']}")
    assert PaymentIntent.objects.get(id=intent["id"]).customer.subscriber_id == tenant.pk
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert invoice.status == InvoiceStatus.PAID
    trigger = WebhookEventTrigger.objects.get(event__id=evt["id"])
    assert (trigger.valid, trigger.processed) == (True, True)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda evt: {"secret": "whsec_someoneElsesSecret0000"}, id="wrong-secret"),
        pytest.param(lambda evt: {"tamper": True}, id="tampered-body"),
    ],
)
def test_a_bad_signature_is_400_and_nothing_is_stored(fake, client, tenant, mangle):
    _, payment, intent = pending_payment(fake, tenant)
    calls_before = len(fake.rsps.calls)
    evt = sf.event("payment_intent.succeeded", intent)
    options = mangle(evt)
    body = json.dumps(evt)
    header = sf.sign(body, secret=options.get("secret", sf.WEBHOOK_SECRET))
    if options.get("tamper"):
        body = body.replace('"amount": 1000', '"amount": 1')

    response = client.post(
        URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not Event.objects.filter(id=evt["id"]).exists()
    assert not WebhookEventTrigger.objects.exists()
    assert len(fake.rsps.calls) == calls_before  # not even a call to Stripe
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING


def test_a_stale_signature_is_400_and_one_inside_the_tolerance_passes(fake, client, tenant):
    _, _payment, intent = pending_payment(fake, tenant)
    signed_at = int(time.time())
    stale = sf.event("payment_intent.succeeded", intent)
    with time_machine.travel(signed_at + 301, tick=False):
        response = deliver(client, stale, timestamp=signed_at)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not Event.objects.exists()

    fresh = sf.event("payment_intent.succeeded", intent)
    with time_machine.travel(signed_at + 299, tick=False):
        response = deliver(client, fresh, timestamp=signed_at)
    assert response.status_code == 200
    assert Event.objects.filter(id=fresh["id"]).exists()


def test_a_missing_signature_or_secret_is_400(fake, client, settings):
    body = json.dumps(sf.event("customer.updated", sf.customer()))
    response = client.post(URL, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"

    settings.STRIPE_WEBHOOK_SECRET = ""
    response = client.post(
        URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sf.sign(body)
    )
    assert response.status_code == 400
    assert not Event.objects.exists()
    assert not WebhookEventTrigger.objects.exists()


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"object": "charge", "id": "ch_1"}'])
def test_a_signed_body_that_is_not_an_event_is_400(fake, client, body):
    response = client.post(
        URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sf.sign(body)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_payload"


def test_get_is_not_allowed(client):
    response = client.get(URL)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


# --- exactly once and ordering ---------------------------------------------------------------


def test_a_duplicate_delivery_is_200_and_changes_nothing(fake, client, tenant):
    invoice, _payment, intent = pending_payment(fake, tenant)
    evt = sf.event("payment_intent.succeeded", intent)
    assert deliver(client, evt).status_code == 200
    invoice.refresh_from_db()
    state = (invoice.status, invoice.amount_paid, invoice.updated_at)
    counts = (
        Event.objects.count(),
        AuditEntry.objects.count(),
        WebhookEventTrigger.objects.count(),
    )
    calls = len(fake.rsps.calls)

    again = deliver(client, evt)

    assert again.status_code == 200
    assert again.json() == {"id": evt["id"], "status": "duplicate"}
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.updated_at) == state
    assert (
        Event.objects.count(),
        AuditEntry.objects.count(),
        WebhookEventTrigger.objects.count(),
    ) == counts
    assert len(fake.rsps.calls) == calls


def test_payment_failed_records_stripes_code_and_message(fake, client, tenant):
    _invoice, payment, intent = pending_payment(fake, tenant)
    failed = dict(
        intent,
        status="requires_payment_method",
        last_payment_error=sf.last_payment_error(
            code="card_declined", message="Your card was declined."
        ),
    )
    fake.put(failed)

    assert deliver(client, sf.event("payment_intent.payment_failed", failed)).status_code == 200

    payment.refresh_from_db()
    assert (payment.status, payment.failure_code, payment.failure_message) == (
        PaymentStatus.FAILED,
        "card_declined",
        "Your card was declined.",
    )


def test_an_older_payment_failure_after_the_success_leaves_it_paid(fake, client, tenant):
    invoice, payment, intent = pending_payment(fake, tenant)
    failed = dict(
        intent, status="requires_payment_method", last_payment_error=sf.last_payment_error()
    )
    newer = sf.event("payment_intent.succeeded", intent, created=sf.NOW + 60)
    older = sf.event("payment_intent.payment_failed", failed, created=sf.NOW)

    assert deliver(client, newer).status_code == 200
    assert deliver(client, older).status_code == 200

    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert invoice.status == InvoiceStatus.PAID
    assert Event.objects.filter(id=older["id"]).exists()  # recorded all the same


def test_customer_events_out_of_order_keep_the_newest_state(fake, client, tenant):
    customer_id = stripe_customer(fake, tenant)
    card = fake.put(sf.payment_method(customer=customer_id))
    fake.get(customer_id)["invoice_settings"]["default_payment_method"] = card["id"]
    with_card = dict(fake.get(customer_id), invoice_settings={"default_payment_method": card["id"]})
    without = dict(fake.get(customer_id), invoice_settings={"default_payment_method": None})
    newer = sf.event("customer.updated", with_card, created=sf.NOW + 120)
    older = sf.event("customer.updated", without, created=sf.NOW + 60)

    assert deliver(client, newer).status_code == 200
    assert has_payment_method(tenant) is True
    assert deliver(client, older).status_code == 200
    assert has_payment_method(tenant) is True  # the older snapshot did not win
    assert Event.objects.filter(id=older["id"]).exists()

    newest = sf.event("customer.updated", without, created=sf.NOW + 180)
    assert deliver(client, newest).status_code == 200
    assert has_payment_method(tenant) is False


def test_an_older_attach_after_a_newer_detach_changes_nothing(fake, client, tenant):
    customer_id = stripe_customer(fake, tenant)
    card = fake.put(sf.payment_method(customer=None))  # detached, as Stripe holds it now
    detached = sf.event(
        "payment_method.detached",
        card,
        created=sf.NOW + 120,
        previous_attributes={"customer": customer_id},
    )
    attached = sf.event(
        "payment_method.attached", dict(card, customer=customer_id), created=sf.NOW + 60
    )

    assert deliver(client, detached).status_code == 200
    assert deliver(client, attached).status_code == 200

    assert has_payment_method(tenant) is False
    # The stale attach did not make the (gone) card the default either.
    assert fake.requests("POST", f"/v1/customers/{customer_id}") == []


# --- payment methods and customers -----------------------------------------------------------


def test_checkout_setup_completed_makes_the_card_the_default(fake, client, tenant):
    customer_id = stripe_customer(fake, tenant)
    card = fake.put(sf.payment_method(customer=customer_id))
    setup = fake.put(sf.setup_intent(customer=customer_id, payment_method=card["id"]))
    session = fake.put(sf.checkout_session(customer=customer_id, setup_intent=setup["id"]))
    evt = sf.event("checkout.session.completed", session)

    response = deliver(client, evt)

    assert response.status_code == 200, response.content
    (update,) = fake.requests("POST", f"/v1/customers/{customer_id}")
    assert fake.form(update)["invoice_settings[default_payment_method]"] == card["id"]
    assert update.headers["Idempotency-Key"] == f"default-pm-{evt['id']}"
    assert fake.requests("GET", f"/v1/setup_intents/{setup['id']}")
    assert Customer.objects.get(id=customer_id).default_payment_method_id == card["id"]
    assert has_payment_method(tenant) is True
    entry = AuditEntry.objects.get(action="subscription.payment_method", tenant_id=tenant.pk)
    assert entry.actor == f"stripe:{evt['id']}"


def test_payment_method_attached_becomes_default_and_detached_clears(fake, client, tenant):
    customer_id = stripe_customer(fake, tenant)
    card = fake.put(sf.payment_method(customer=customer_id))

    attached = sf.event("payment_method.attached", card, created=sf.NOW + 10)
    assert deliver(client, attached).status_code == 200
    assert fake.get(customer_id)["invoice_settings"]["default_payment_method"] == card["id"]
    assert has_payment_method(tenant) is True

    # Stripe detaches the card and clears the customer's default.
    fake.get(card["id"])["customer"] = None
    fake.get(customer_id)["invoice_settings"]["default_payment_method"] = None
    detached = sf.event(
        "payment_method.detached",
        fake.get(card["id"]),
        created=sf.NOW + 20,
        previous_attributes={"customer": customer_id},
    )
    assert deliver(client, detached).status_code == 200
    assert has_payment_method(tenant) is False


def test_customer_deleted_clears_the_payment_method(fake, client, tenant):
    customer_id = stripe_customer(fake, tenant)
    card = fake.put(sf.payment_method(customer=customer_id))
    fake.get(customer_id)["invoice_settings"]["default_payment_method"] = card["id"]
    assert (
        deliver(
            client, sf.event("customer.updated", fake.get(customer_id), created=sf.NOW + 10)
        ).status_code
        == 200
    )
    assert has_payment_method(tenant) is True
    snapshot = fake.get(customer_id)
    fake.objects[customer_id] = sf.deleted_customer(customer_id)  # gone in Stripe

    response = deliver(client, sf.event("customer.deleted", snapshot, created=sf.NOW + 20))

    assert response.status_code == 200, response.content
    assert has_payment_method(tenant) is False
    assert Customer.objects.get(id=customer_id).date_purged is not None
    # The next customer of the tenant is a new one.
    assert stripe_customer_ensure(tenant_id=tenant.pk) != customer_id


def test_charge_refunded_is_recorded_against_the_payment(fake, client, tenant):
    _invoice, payment, intent = pending_payment(fake, tenant)
    ch = sf.charge(
        amount=1000,
        amount_refunded=400,
        customer=intent["customer"],
        payment_intent=intent["id"],
        payment_method=intent["payment_method"],
    )
    txn = fake.put(sf.balance_transaction(amount=1000, source=ch["id"]))
    ch["balance_transaction"] = txn["id"]
    fake.put(ch)

    assert deliver(client, sf.event("charge.refunded", ch)).status_code == 200

    entry = AuditEntry.objects.get(action="payment.refunded", target_id=str(payment.pk))
    assert entry.data["amount_refunded"] == 400


# --- unknown customers and failures ----------------------------------------------------------


def test_an_event_for_an_unknown_customer_is_recorded_and_acknowledged(fake, client, tenant):
    stranger = fake.put(sf.customer(email="someone@else.example"))  # not one of our tenants
    card = fake.put(sf.payment_method(customer=stranger["id"]))
    stranger["invoice_settings"]["default_payment_method"] = card["id"]
    fake.put(stranger)
    evt = sf.event("customer.updated", stranger)

    response = deliver(client, evt)

    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    assert Event.objects.filter(id=evt["id"]).exists()
    assert Customer.objects.get(id=stranger["id"]).subscriber is None
    assert has_payment_method(tenant) is False
    assert not AuditEntry.objects.filter(action="subscription.payment_method").exists()


def test_a_payment_intent_we_never_made_is_recorded_and_acknowledged(fake, client):
    stranger = fake.put(sf.customer())
    intent = fake.put(sf.payment_intent(customer=stranger["id"]))
    evt = sf.event("payment_intent.succeeded", intent)

    response = deliver(client, evt)

    assert response.status_code == 200
    assert Event.objects.filter(id=evt["id"]).exists()


def test_a_failure_stores_nothing_but_the_error_and_the_redelivery_succeeds(fake, client, tenant):
    _invoice, payment, intent = pending_payment(fake, tenant)
    evt = sf.event("payment_intent.succeeded", intent)
    fake.outage("GET", f"/v1/payment_intents/{intent['id']}")  # while dj-stripe retrieves it

    response = deliver(client, evt)

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "webhook_processing_failed"
    assert not Event.objects.filter(id=evt["id"]).exists()
    failed = WebhookEventTrigger.objects.get(processed=False)
    assert failed.exception
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING

    fake.outages.clear()
    assert deliver(client, evt).status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED


def test_a_success_before_the_charge_call_returned_is_delivered_again(fake, client, tenant):
    _invoice, payment, intent = pending_payment(fake, tenant)
    Payment.objects.filter(pk=payment.pk).update(external_id="")  # the charge call is in flight
    evt = sf.event("payment_intent.succeeded", intent)

    assert deliver(client, evt).status_code == 500  # Stripe retries later
    assert not Event.objects.filter(id=evt["id"]).exists()

    Payment.objects.filter(pk=payment.pk).update(external_id=intent["id"])
    assert deliver(client, evt).status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED


# --- routes ----------------------------------------------------------------------------------


def test_our_route_and_dj_stripes_uuid_route_both_resolve():
    assert resolve(URL, urlconf="config.urls_public").func is stripe_webhook
    endpoint_uuid = uuid.uuid4()
    path = reverse(
        "djstripe:djstripe_webhook_by_uuid",
        kwargs={"uuid": endpoint_uuid},
        urlconf="config.urls_public",
    )
    assert path == f"/stripe/webhook/{endpoint_uuid}/"
    assert resolve(path, urlconf="config.urls_public").url_name == "djstripe_webhook_by_uuid"


def test_dj_stripes_own_endpoint_runs_the_same_handlers(fake, client, tenant):
    _invoice, payment, intent = pending_payment(fake, tenant)
    endpoint_secret = "whsec_adminRegisteredEndpoint000000"
    endpoint = WebhookEndpoint.objects.create(
        id="we_TenantryAdmin01",
        livemode=False,
        api_version=sf.API_VERSION,
        enabled_events=["*"],
        secret=endpoint_secret,
        status="enabled",
        url="https://tenantry.example/stripe/webhook/admin/",
    )
    url = f"/stripe/webhook/{endpoint.djstripe_uuid}/"
    evt = sf.event("payment_intent.succeeded", intent)

    assert deliver(client, evt, url=url, secret="whsec_wrong0000000000").status_code == 400
    response = deliver(client, evt, url=url, secret=endpoint_secret)

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    # And a redelivery to our endpoint is a duplicate.
    assert deliver(client, evt).json()["status"] == "duplicate"

"""Each tenant's Stripe Customer, kept as a dj-stripe ``Customer`` whose subscriber is the tenant.

A tenant's *current* customer is its newest non-purged dj-stripe Customer in the mode of the
configured key (a ``customer.deleted`` event purges it; the next charge or setup session makes
a new one). The customer's default payment method is Stripe's
``invoice_settings.default_payment_method``.
"""

from __future__ import annotations

from typing import Any

import stripe
import structlog
from django.conf import settings
from django.db import connection, transaction
from djstripe.models import Customer
from djstripe.settings import djstripe_settings

from core.errors import NotFound, ServiceUnavailable
from tenants.models import Tenant

log = structlog.get_logger(__name__)

# The metadata key dj-stripe links a Stripe Customer to its subscriber (the tenant) with.
SUBSCRIBER_KEY: str = djstripe_settings.SUBSCRIBER_CUSTOMER_KEY

# Worth retrying with the same idempotency key: the request may or may not have happened.
TRANSIENT_ERRORS: tuple[type[stripe.StripeError], ...] = (
    stripe.APIConnectionError,
    stripe.APIError,
    stripe.RateLimitError,
)


def stripe_api_key() -> str:
    return str(settings.STRIPE_SECRET_KEY)


def stripe_livemode() -> bool:
    """The mode of the configured key (``sk_live_``/``rk_live_``), else ``STRIPE_LIVE_MODE``."""
    key = stripe_api_key()
    if key.startswith(("sk_live_", "rk_live_")):
        return True
    if key.startswith(("sk_test_", "rk_test_")):
        return False
    return bool(settings.STRIPE_LIVE_MODE)


def request_options() -> dict[str, Any]:
    """Per-request options for the stripe library: our key, and dj-stripe's API version so
    the objects we sync have the shape dj-stripe expects."""
    return {"api_key": stripe_api_key(), "stripe_version": djstripe_settings.STRIPE_API_VERSION}


def advisory_lock(name: str) -> None:
    """A PostgreSQL advisory lock held until the current transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])


def tenant_customer(tenant_id: int) -> Customer | None:
    """The tenant's current dj-stripe Customer, if it has one."""
    return (
        Customer.objects.filter(
            subscriber_id=tenant_id, date_purged__isnull=True, livemode=stripe_livemode()
        )
        .order_by("-created", "-djstripe_id")
        .first()
    )


def customer_tenant_id(customer: Customer) -> int | None:
    """The tenant a customer belongs to: its subscriber, or (once dj-stripe has purged it
    after ``customer.deleted``) the tenant named in its metadata."""
    if customer.subscriber_id is not None:
        return int(customer.subscriber_id)
    raw = str((customer.metadata or {}).get(SUBSCRIBER_KEY) or "")
    if not raw.isdigit():
        return None
    tenant_id = int(raw)
    return tenant_id if Tenant.objects.filter(pk=tenant_id).exists() else None


def _customer_idempotency_key(tenant_id: int) -> str:
    # ``customer-<tenant_id>`` for the first customer. A tenant whose customer was deleted gets
    # a new key, or Stripe would answer (for 24 hours) with the deleted customer again.
    earlier = Customer.objects.filter(subscriber_id=tenant_id).count()
    earlier += (
        Customer.objects.filter(subscriber__isnull=True)
        .filter(metadata__contains={SUBSCRIBER_KEY: str(tenant_id)})
        .count()
    )
    return f"customer-{tenant_id}" if earlier == 0 else f"customer-{tenant_id}-{earlier}"


@transaction.atomic
def stripe_customer_ensure(*, tenant_id: int) -> str:
    """The id of the tenant's Stripe Customer, created (and synced into dj-stripe) if needed."""
    advisory_lock(f"stripe-customer-ensure:{tenant_id}")
    existing = tenant_customer(tenant_id)
    if existing is not None:
        return str(existing.id)
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        raise NotFound("There is no such tenant.", code="tenant_not_found")
    try:
        data = stripe.Customer.create(
            email=tenant.contact_email,
            name=tenant.name,
            metadata={SUBSCRIBER_KEY: str(tenant.pk), "tenant_slug": tenant.slug},
            idempotency_key=_customer_idempotency_key(tenant_id),
            **request_options(),
        )
    except TRANSIENT_ERRORS as exc:
        raise ServiceUnavailable(
            "Stripe could not be reached; try again.", code="gateway_unavailable"
        ) from exc
    customer = Customer.sync_from_stripe_data(data, api_key=stripe_api_key())
    if customer.subscriber_id != tenant.pk:
        customer.subscriber = tenant
        customer.save(update_fields=["subscriber", "djstripe_updated"])
    log.info("stripe_customer_created", tenant_id=tenant_id, customer=customer.id)
    return str(customer.id)


def customer_refresh(customer_id: str) -> Customer:
    """Retrieve the customer from Stripe and sync it into dj-stripe."""
    data = stripe.Customer.retrieve(customer_id, **request_options())
    return Customer.sync_from_stripe_data(data, api_key=stripe_api_key())


def default_payment_method_id(customer: Customer) -> str | None:
    """``invoice_settings.default_payment_method`` of a synced customer (None once deleted)."""
    data = customer.stripe_data or {}
    if data.get("deleted"):
        return None
    value = (data.get("invoice_settings") or {}).get("default_payment_method")
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


def customer_default_payment_method_set(
    customer_id: str, payment_method_id: str, *, idempotency_key: str
) -> Customer:
    """Make a payment method the customer's default in Stripe and sync the result."""
    data = stripe.Customer.modify(
        customer_id,
        invoice_settings={"default_payment_method": payment_method_id},
        idempotency_key=idempotency_key,
        **request_options(),
    )
    return Customer.sync_from_stripe_data(data, api_key=stripe_api_key())

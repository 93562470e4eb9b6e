"""Stripe webhooks: ``POST /stripe/webhook/`` and the translation of Stripe events into billing
and subscription services.

The view verifies ``Stripe-Signature`` against ``STRIPE_WEBHOOK_SECRET`` (stripe's own check,
300 s tolerance) before anything is stored, then hands the event to dj-stripe
(``djstripe.models.Event.process``), which stores it under its unique Stripe id, syncs the
objects it names and fires dj-stripe's per-type signals, all in one transaction. Our handlers
are receivers of those signals, so they run in that same transaction and only when the Event
row is new: a duplicate delivery finds the row and changes nothing; two concurrent deliveries
of one event meet at the unique index and the loser rolls back, handlers included. A failure
rolls everything back (500) and Stripe delivers again. dj-stripe's own
``/stripe/webhook/<uuid>/`` endpoints run the same handlers.

Ordering: payment results and refunds carry ``occurred_at`` (the event's ``created``) and the
billing services ignore older results. Customer-level state (whether the tenant has a default
payment method) is applied under a per-customer lock and only when no newer event of the same
customer has been stored, so an older event never overwrites newer state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from traceback import format_exc
from typing import Any

import stripe
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from djstripe.models import Customer, Event, WebhookEventTrigger
from djstripe.signals import WEBHOOK_SIGNALS

from billing.models import Payment, PaymentStatus
from billing.stripe_customers import (
    advisory_lock,
    customer_default_payment_method_set,
    customer_refresh,
    customer_tenant_id,
    default_payment_method_id,
    request_options,
    stripe_api_key,
    tenant_customer,
)
from core.api.errors import error_response
from core.audit import Actor
from core.errors import ApplicationError

log = structlog.get_logger(__name__)

SIGNATURE_TOLERANCE = 300

# --- the view -----------------------------------------------------------------------------


def _invalid_signature(message: str) -> JsonResponse:
    return error_response(status_code=400, code="invalid_signature", message=message)


def _remote_ip(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "0.0.0.0")  # noqa: S104 (a stored value)


def _trigger_record(
    request: HttpRequest,
    body: str,
    *,
    event: Event | None,
    processed: bool,
    error: BaseException | None = None,
) -> None:
    """Keep the delivery in dj-stripe's log (``WebhookEventTrigger``, shown in the admin)."""
    try:
        with transaction.atomic():
            WebhookEventTrigger.objects.create(
                remote_ip=_remote_ip(request),
                headers=dict(request.headers),
                body=body,
                valid=True,
                processed=processed,
                event=event,
                exception=str(error)[:128] if error else "",
                traceback=format_exc() if error else "",
            )
    except Exception:
        log.exception("stripe_webhook_trigger_not_recorded")


@csrf_exempt
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return error_response(
            status_code=405,
            code="method_not_allowed",
            message="Stripe delivers events with POST.",
            headers={"Allow": "POST"},
        )
    secret = str(getattr(settings, "STRIPE_WEBHOOK_SECRET", "") or "")
    if not secret:
        return _invalid_signature("Stripe webhooks are not configured (no signing secret).")
    signature = request.headers.get("Stripe-Signature")
    if not signature:
        return _invalid_signature("The Stripe-Signature header is missing.")
    payload = request.body
    try:
        stripe.Webhook.construct_event(payload, signature, secret, tolerance=SIGNATURE_TOLERANCE)
    except stripe.SignatureVerificationError:
        return _invalid_signature("The Stripe-Signature header does not verify this body.")
    except (ValueError, TypeError, AttributeError):  # signed, but not a JSON event
        return error_response(
            status_code=400, code="invalid_payload", message="The body is not a Stripe event."
        )

    data = json.loads(payload)
    if not isinstance(data, dict) or data.get("object") != "event" or not data.get("id"):
        return error_response(
            status_code=400, code="invalid_payload", message="The body is not a Stripe event."
        )
    if not stripe_api_key():
        return error_response(
            status_code=503,
            code="stripe_not_configured",
            message="STRIPE_SECRET_KEY is not set; the event cannot be processed.",
        )

    event_id = str(data["id"])
    if Event.objects.filter(id=event_id).exists():
        log.info("stripe_event_duplicate", stripe_event=event_id, type=data.get("type"))
        return JsonResponse({"id": event_id, "status": "duplicate"})

    body = payload.decode("utf-8")
    try:
        with transaction.atomic():
            event = Event.process(data=data, api_key=stripe_api_key())
            _trigger_record(request, body, event=event, processed=True)
    except Exception as exc:
        log.exception("stripe_event_failed", stripe_event=event_id, type=data.get("type"))
        _trigger_record(request, body, event=None, processed=False, error=exc)
        return error_response(
            status_code=500,
            code="webhook_processing_failed",
            message="The event could not be processed; Stripe will deliver it again.",
        )
    log.info("stripe_event_processed", stripe_event=event_id, type=event.type)
    return JsonResponse({"id": event_id, "status": "processed"})


# --- event handlers -----------------------------------------------------------------------

Handler = Callable[[Event], None]
HANDLERS: dict[str, Handler] = {}


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for event_type in event_types:
            HANDLERS[event_type] = handler
        return handler

    return register


def _actor(event: Event) -> Actor:
    return Actor("stripe", str(event.id))


def _object(event: Event) -> dict[str, Any]:
    return dict((event.data or {}).get("object") or {})


def _occurred_at(event: Event) -> datetime:
    if event.created is not None:
        return event.created
    return datetime.fromtimestamp(int((event.stripe_data or {}).get("created") or 0), tz=UTC)


def _id(value: Any) -> str:
    """A Stripe reference, given as an id or an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else ""


class PaymentNotYetRecorded(Exception):
    """The PaymentIntent is ours but its Payment does not know its id yet (the charge call has
    not returned): fail the delivery so that Stripe sends it again a little later."""


def _payment_unmatched(event: Event, intent: dict[str, Any]) -> None:
    invoice_id = str((intent.get("metadata") or {}).get("invoice_id") or "")
    if invoice_id.isdigit() and (
        Payment.objects.filter(
            invoice_id=int(invoice_id),
            gateway="stripe",
            status=PaymentStatus.PENDING,
            external_id="",
        ).exists()
    ):
        raise PaymentNotYetRecorded(f"{intent.get('id')} of invoice {invoice_id}")
    log.info("stripe_event_unmatched", stripe_event=event.id, payment_intent=intent.get("id"))


@handles("payment_intent.succeeded")
def _payment_intent_succeeded(event: Event) -> None:
    from billing.services import payment_result_apply

    intent = _object(event)
    payment = payment_result_apply(
        external_id=_id(intent.get("id")), status="succeeded", occurred_at=_occurred_at(event)
    )
    if payment is None:
        _payment_unmatched(event, intent)


@handles("payment_intent.payment_failed")
def _payment_intent_failed(event: Event) -> None:
    from billing.services import payment_result_apply

    intent = _object(event)
    error = intent.get("last_payment_error") or {}
    payment = payment_result_apply(
        external_id=_id(intent.get("id")),
        status="failed",
        failure_code=str(error.get("code") or ""),
        failure_message=str(error.get("message") or ""),
        occurred_at=_occurred_at(event),
    )
    if payment is None:
        _payment_unmatched(event, intent)


@handles("charge.refunded")
def _charge_refunded(event: Event) -> None:
    from billing.services import refund_recorded

    charge = _object(event)
    intent_id = _id(charge.get("payment_intent"))
    if not intent_id:
        log.info("stripe_event_unmatched", stripe_event=event.id, charge=charge.get("id"))
        return
    refund_recorded(
        external_id=intent_id,
        amount_refunded=int(charge.get("amount_refunded") or 0),
        occurred_at=_occurred_at(event),
    )


# Customer-level state: whether the tenant has a default payment method.

# The stored events that describe one customer's payment-method state, by where each names it.
_CUSTOMER_STATE_PATHS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("customer.updated", "customer.deleted"), "data__object__id"),
    (("payment_method.attached", "checkout.session.completed"), "data__object__customer"),
    (("payment_method.detached",), "data__previous_attributes__customer"),
)


def _customer_events(customer_id: str, types: tuple[str, ...] | None = None) -> Q:
    q = Q(pk__in=[])
    for event_types, path in _CUSTOMER_STATE_PATHS:
        chosen = tuple(t for t in event_types if types is None or t in types)
        if chosen:
            q |= Q(type__in=chosen, **{path: customer_id})
    return q


def _newer_event_stored(
    event: Event, customer_id: str, types: tuple[str, ...] | None = None
) -> bool:
    """Is a newer event about this customer's payment-method state already stored?"""
    return (
        Event.objects.filter(_customer_events(customer_id, types), created__gt=event.created)
        .exclude(id=event.id)
        .exists()
    )


def _tenant_for(customer_id: str) -> int | None:
    """The tenant whose *current* customer this is (a replaced customer decides nothing)."""
    customer = Customer.objects.filter(id=customer_id).first()
    if customer is None:
        return None
    tenant_id = customer_tenant_id(customer)
    if tenant_id is None:
        return None
    current = tenant_customer(tenant_id)
    if current is not None and current.id != customer_id:
        return None
    return tenant_id


def _presence_set(event: Event, tenant_id: int, present: bool) -> None:
    from subscriptions.services import subscription_payment_method_set

    subscription_payment_method_set(tenant_id=tenant_id, present=present, actor=_actor(event))


def _presence_apply(event: Event, customer_id: str, decide: Callable[[], bool | None]) -> None:
    """Set the tenant's payment-method flag from this event, unless it is stale."""
    if not customer_id:
        return
    advisory_lock(f"stripe-customer-state:{customer_id}")
    if _newer_event_stored(event, customer_id):
        log.info("stripe_event_stale", stripe_event=event.id, customer=customer_id)
        return
    tenant_id = _tenant_for(customer_id)
    if tenant_id is None:
        log.info("stripe_event_unknown_customer", stripe_event=event.id, customer=customer_id)
        return
    present = decide()
    if present is not None:
        _presence_set(event, tenant_id, present)


@handles("customer.updated")
def _customer_updated(event: Event) -> None:
    customer = _object(event)
    default = (customer.get("invoice_settings") or {}).get("default_payment_method")
    present = bool(default) and not customer.get("deleted")
    _presence_apply(event, _id(customer.get("id")), lambda: present)


@handles("customer.deleted")
def _customer_deleted(event: Event) -> None:
    _presence_apply(event, _id(_object(event).get("id")), lambda: False)


@handles("payment_method.attached")
def _payment_method_attached(event: Event) -> None:
    payment_method = _object(event)
    customer_id = _id(payment_method.get("customer"))
    payment_method_id = _id(payment_method.get("id"))

    def decide() -> bool:
        # A customer without a default gets the attached method as its default, so that
        # off-session charges can use it.
        customer = customer_refresh(customer_id)
        if default_payment_method_id(customer) is None:
            try:
                customer_default_payment_method_set(
                    customer_id, payment_method_id, idempotency_key=f"default-pm-{event.id}"
                )
            except stripe.InvalidRequestError:  # detached again meanwhile
                log.info("stripe_payment_method_gone", payment_method=payment_method_id)
                return False
        return True

    _presence_apply(event, customer_id, decide)


@handles("payment_method.detached")
def _payment_method_detached(event: Event) -> None:
    payment_method_id = _id(_object(event).get("id"))
    previous = (event.data or {}).get("previous_attributes") or {}
    customer_id = _id(previous.get("customer"))

    def decide() -> bool:
        default = default_payment_method_id(customer_refresh(customer_id))
        return default is not None and default != payment_method_id

    _presence_apply(event, customer_id, decide)


@handles("checkout.session.completed")
def _checkout_session_completed(event: Event) -> None:
    session = _object(event)
    if session.get("mode") != "setup":
        return
    customer_id = _id(session.get("customer"))
    setup_intent_id = _id(session.get("setup_intent"))
    if not customer_id or not setup_intent_id:
        log.info("stripe_event_unmatched", stripe_event=event.id, session=session.get("id"))
        return

    # Saving the card is a command, not a snapshot: it is carried out unless a newer setup of
    # this customer already was. The flag then follows the general rule (no newer event).
    advisory_lock(f"stripe-customer-state:{customer_id}")
    if _newer_event_stored(event, customer_id, types=("checkout.session.completed",)):
        log.info("stripe_event_stale", stripe_event=event.id, customer=customer_id)
        return
    tenant_id = _tenant_for(customer_id)
    if tenant_id is None:
        log.info("stripe_event_unknown_customer", stripe_event=event.id, customer=customer_id)
        return
    setup_intent = stripe.SetupIntent.retrieve(setup_intent_id, **request_options())
    payment_method_id = _id(setup_intent.payment_method)
    if setup_intent.status != "succeeded" or not payment_method_id:
        log.info("stripe_setup_incomplete", stripe_event=event.id, setup_intent=setup_intent_id)
        return
    customer_default_payment_method_set(
        customer_id, payment_method_id, idempotency_key=f"default-pm-{event.id}"
    )
    if _newer_event_stored(event, customer_id):
        log.info("stripe_event_stale", stripe_event=event.id, customer=customer_id)
        return
    _presence_set(event, tenant_id, True)


def _on_event(sender: Any, event: Event, **kwargs: Any) -> None:
    """dj-stripe's signal receiver: runs only for a newly stored Event, in its transaction."""
    handler = HANDLERS.get(str(event.type))
    if handler is None:
        return
    try:
        with transaction.atomic():
            handler(event)
    except ApplicationError as exc:
        # A business rule refused the change: the event stays recorded and acknowledged.
        log.warning("stripe_event_refused", stripe_event=event.id, type=event.type, code=exc.code)


def connect() -> None:
    """Attach our handlers to dj-stripe's webhook signals (idempotent)."""
    for event_type in HANDLERS:
        WEBHOOK_SIGNALS[event_type].connect(
            _on_event, sender=Event, weak=False, dispatch_uid=f"tenantry-billing:{event_type}"
        )


connect()

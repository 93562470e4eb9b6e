"""Every write to webhook endpoints and deliveries, and the delivery itself.

Fan-out. For each domain event with a tenant, ``webhook_event_fan_out`` (a ``"*"`` outbox
subscriber) makes one ``WebhookDelivery`` per active endpoint of that tenant that receives
the event type, and queues its first attempt after commit. The (endpoint, event) unique
constraint makes it idempotent: the outbox may dispatch an event twice.

Delivery. ``webhook_delivery_attempt`` claims a due delivery (``select_for_update(skip_locked)``
plus a lease: ``next_attempt_at`` moves ``CLAIM_LEASE`` ahead, so no other worker or sweep
takes it), commits, sends the request with no transaction or lock held, then records the
outcome. The whole request is bounded by ``REQUEST_DEADLINE_SECONDS`` of wall clock (see
``transport``), far below ``CLAIM_LEASE``, so a slow receiver cannot outlive the lease and get
the same delivery sent by a second worker in parallel. The body is ``{"type", "timestamp", "data", "schema_version", "event_id"}``, signed
per Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``). The
``webhook-id`` is derived from (event, endpoint) and never changes, so receivers can drop
duplicates: delivery is at least once (a worker that dies mid-request leaves the lease to
expire and the attempt is made again).

Retries. A 2xx answer is a success; any other status, a network error, a timeout or an SSRF
refusal is a failed attempt. After failed attempt *n* the next one is due
``RETRY_SCHEDULE[n - 1]`` later: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts over
about 27.6 hours); after the last one the delivery gives up. Due retries are found by the
``webhooks.deliver_due`` beat task (every minute), which queues one ``webhooks.deliver`` task
per due delivery (it sends nothing itself), so they survive worker restarts. A tenant's
retry or a staff replay is one more attempt, now; the schedule goes by the attempt count, so
a delivery that has used up its schedule gives up again if that attempt fails. A delivery
that is in flight (claimed, its lease not expired) cannot be retried or replayed
(``delivery_in_flight``): that would make it due again and send it twice in parallel.

Disabling. ``consecutive_failures`` counts deliveries of an endpoint that gave up in a row;
any successful attempt resets it to 0. A delivery counts once: the first time it gives up
(``WebhookDelivery.gave_up_counted``); giving up again after a retry or replay does not
count again. When it reaches ``DISABLE_AFTER_GAVE_UP`` (5), i.e.
five deliveries each failed every attempt for about a day with no success in between, the
endpoint is disabled: ``is_active`` off, ``disabled_at``/``disabled_reason`` set, its open
deliveries closed as given up, an audit entry and a ``WebhookEndpointDisabled`` event. Staff
re-enable it in the admin. Attempts themselves record no events (no loops).

Lock order. Always the endpoint row first, then its delivery rows: disabling and deleting
lock the endpoint, then update its open deliveries; recording an attempt that may touch the
endpoint (a success resetting the count, a give-up) locks the endpoint, then the delivery.
A plain failed attempt (a retry scheduled) and claims lock only the delivery and never wait
for the endpoint. Never lock an endpoint while holding one of its deliveries.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
import structlog
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks import Webhook

from core.audit import SYSTEM, Actor, audit_record
from core.errors import Conflict, InvalidInput, NotFound
from core.events import event_record
from core.models import DomainEvent
from tenants.models import Tenant
from tenants.webhooks import ssrf
from tenants.webhooks.catalog import WEBHOOK_EVENT_TYPES
from tenants.webhooks.models import (
    OPEN_STATUSES,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from tenants.webhooks.transport import webhook_post

log = structlog.get_logger(__name__)

RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = 1 + len(RETRY_SCHEDULE)
DISABLE_AFTER_GAVE_UP = 5
REQUEST_TIMEOUT_SECONDS = 10.0  # per socket operation (connect, each read)
REQUEST_DEADLINE_SECONDS = 15.0  # wall clock for the whole request, body included
# Far longer than an attempt can take (DNS, the request's deadline, two short transactions):
# a claimed delivery is not taken again before this.
CLAIM_LEASE = timedelta(minutes=10)
MAX_ENDPOINTS_PER_TENANT = 20
ERROR_LIMIT = 2000
SECRET_BYTES = 32
# uuid5 namespace of webhook ids; changing it would change every webhook-id.
WEBHOOK_ID_NAMESPACE = uuid.UUID("6f0c4d6e-3b1a-5c57-9a39-5f5b8f7f1d2a")


class AttemptOutcome:
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a retry is scheduled
    GAVE_UP = "gave_up"
    SKIPPED = "skipped"  # not due, claimed by another worker, or already finished


@dataclass(frozen=True)
class _Claim:
    delivery_id: int
    attempt: int
    endpoint_id: int
    url: str
    secret: str
    webhook_id: str
    body: bytes


@dataclass(frozen=True)
class _Result:
    ok: bool
    status_code: int | None = None
    error: str = ""
    response_body: str = ""


def webhook_secret_generate() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def webhook_id_for(*, event_id: Any, endpoint_id: int) -> str:
    return "msg_" + uuid.uuid5(WEBHOOK_ID_NAMESPACE, f"{event_id}:{endpoint_id}").hex


def webhook_body(event: DomainEvent) -> bytes:
    """The JSON body of an event, exactly the bytes that are signed and sent."""
    body = {
        "type": event.type,
        "timestamp": event.occurred_at.isoformat(),
        "data": event.payload,
        "schema_version": event.schema_version,
        "event_id": str(event.pk),
    }
    return json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def _field_error(field: str, code: str, message: str) -> InvalidInput:
    return InvalidInput(
        "The input is not valid.",
        code="validation_error",
        details={field: [{"code": code, "message": message}]},
    )


def _event_types_clean(event_types: list[str]) -> list[str]:
    unknown = sorted({t for t in event_types if t not in WEBHOOK_EVENT_TYPES})
    if unknown:
        raise InvalidInput(
            "The input is not valid.",
            code="validation_error",
            details={
                "event_types": [
                    {"code": "unknown_event_type", "message": f"Unknown event type '{t}'."}
                    for t in unknown
                ]
            },
        )
    return sorted(set(event_types))


@transaction.atomic
def webhook_endpoint_create(
    *,
    tenant_id: int,
    url: str,
    actor: Actor,
    event_types: list[str] | None = None,
    description: str = "",
) -> WebhookEndpoint:
    """Register an endpoint; its ``secret`` is for the caller to show once."""
    url = url.strip()
    try:
        ssrf.url_check(url)
    except ssrf.UnsafeTarget as exc:
        raise _field_error("url", exc.code, exc.message) from exc
    types = _event_types_clean(event_types or [])
    # Lock the tenant row: concurrent creates for one tenant queue here, so the limit holds.
    if not list(Tenant.objects.select_for_update().filter(pk=tenant_id).values_list("pk")):
        raise NotFound("No such tenant.", code="tenant_not_found")
    live = WebhookEndpoint.objects.filter(tenant_id=tenant_id, deleted_at__isnull=True)
    if live.count() >= MAX_ENDPOINTS_PER_TENANT:
        raise Conflict(
            f"A tenant can have at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints.",
            code="webhook_endpoint_limit",
        )
    endpoint = WebhookEndpoint.objects.create(
        tenant_id=tenant_id,
        url=url,
        description=description.strip(),
        event_types=types,
        secret=webhook_secret_generate(),
    )
    audit_record(
        actor=actor,
        action="webhook_endpoint.create",
        tenant_id=tenant_id,
        target_type="webhook_endpoint",
        target_id=endpoint.pk,
        data={"url": url, "event_types": types},
    )
    return endpoint


def _endpoint_locked(*, endpoint_id: int, tenant_id: int | None = None) -> WebhookEndpoint:
    endpoints = WebhookEndpoint.objects.select_for_update().filter(
        pk=endpoint_id, deleted_at__isnull=True
    )
    if tenant_id is not None:
        endpoints = endpoints.filter(tenant_id=tenant_id)
    endpoint = endpoints.first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", code="webhook_endpoint_not_found")
    return endpoint


def _open_deliveries_close(endpoint: WebhookEndpoint, reason: str) -> int:
    return WebhookDelivery.objects.filter(endpoint=endpoint, status__in=OPEN_STATUSES).update(
        status=DeliveryStatus.GAVE_UP,
        next_attempt_at=None,
        last_error=reason,
        updated_at=timezone.now(),
    )


@transaction.atomic
def webhook_endpoint_delete(*, tenant_id: int, endpoint_id: int, actor: Actor) -> None:
    """Delete an endpoint for the tenant; the row and its history stay for staff."""
    endpoint = _endpoint_locked(endpoint_id=endpoint_id, tenant_id=tenant_id)
    endpoint.deleted_at = timezone.now()
    endpoint.is_active = False
    endpoint.save(update_fields=["deleted_at", "is_active", "updated_at"])
    closed = _open_deliveries_close(endpoint, "The endpoint was deleted.")
    audit_record(
        actor=actor,
        action="webhook_endpoint.delete",
        tenant_id=tenant_id,
        target_type="webhook_endpoint",
        target_id=endpoint.pk,
        data={"url": endpoint.url, "open_deliveries_closed": closed},
    )


def _endpoint_disable(*, endpoint: WebhookEndpoint, reason: str, actor: Actor) -> None:
    """Disable a locked endpoint (in the caller's transaction)."""
    endpoint.is_active = False
    endpoint.disabled_at = timezone.now()
    endpoint.disabled_reason = reason
    endpoint.save(update_fields=["is_active", "disabled_at", "disabled_reason", "updated_at"])
    closed = _open_deliveries_close(endpoint, "The endpoint was disabled.")
    audit_record(
        actor=actor,
        action="webhook_endpoint.disable",
        tenant_id=endpoint.tenant_id,
        target_type="webhook_endpoint",
        target_id=endpoint.pk,
        reason=reason,
        data={
            "url": endpoint.url,
            "consecutive_failures": endpoint.consecutive_failures,
            "open_deliveries_closed": closed,
        },
    )
    event_record(
        type="WebhookEndpointDisabled",
        tenant_id=endpoint.tenant_id,
        payload={
            "endpoint_id": endpoint.pk,
            "url": endpoint.url,
            "reason": reason,
            "consecutive_failures": endpoint.consecutive_failures,
        },
    )
    log.warning("webhook_endpoint_disabled", endpoint_id=endpoint.pk, reason=reason)


@transaction.atomic
def webhook_endpoint_enable(*, endpoint_id: int, actor: Actor, reason: str = "") -> WebhookEndpoint:
    """Staff: turn a disabled endpoint back on, with a clean failure count."""
    endpoint = _endpoint_locked(endpoint_id=endpoint_id)
    if endpoint.is_active:
        raise Conflict("This webhook endpoint is already active.", code="webhook_endpoint_active")
    endpoint.is_active = True
    endpoint.disabled_at = None
    endpoint.disabled_reason = ""
    endpoint.consecutive_failures = 0
    endpoint.save(
        update_fields=[
            "is_active",
            "disabled_at",
            "disabled_reason",
            "consecutive_failures",
            "updated_at",
        ]
    )
    audit_record(
        actor=actor,
        action="webhook_endpoint.enable",
        tenant_id=endpoint.tenant_id,
        target_type="webhook_endpoint",
        target_id=endpoint.pk,
        reason=reason,
        data={"url": endpoint.url},
    )
    return endpoint


def _enqueue_attempts(delivery_ids: list[int]) -> None:
    from tenants.webhooks.tasks import webhook_deliver_task

    for delivery_id in delivery_ids:
        try:
            webhook_deliver_task.delay(delivery_id)
        except Exception:  # broker down: the beat sweep sends due deliveries anyway
            log.warning("webhook_enqueue_failed", delivery_id=delivery_id)


@transaction.atomic
def webhook_event_fan_out(*, event: DomainEvent) -> list[int]:
    """Make the deliveries of one event and queue them on commit; safe to call twice."""
    if event.tenant_id is None:
        return []
    endpoint_ids = list(
        WebhookEndpoint.objects.filter(
            tenant_id=event.tenant_id, is_active=True, deleted_at__isnull=True
        )
        .filter(Q(event_types=[]) | Q(event_types__contains=[event.type]))
        .values_list("pk", flat=True)
    )
    if not endpoint_ids:
        return []
    existing = set(
        WebhookDelivery.objects.filter(event=event, endpoint_id__in=endpoint_ids).values_list(
            "endpoint_id", flat=True
        )
    )
    missing = [pk for pk in endpoint_ids if pk not in existing]
    if not missing:
        return []
    now = timezone.now()
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint_id=endpoint_id,
                event=event,
                webhook_id=webhook_id_for(event_id=event.pk, endpoint_id=endpoint_id),
                status=DeliveryStatus.PENDING,
                next_attempt_at=now,
            )
            for endpoint_id in missing
        ],
        ignore_conflicts=True,  # a concurrent dispatch of the same event made them first
    )
    created = list(
        WebhookDelivery.objects.filter(
            event=event, endpoint_id__in=missing, attempts=0, status=DeliveryStatus.PENDING
        ).values_list("pk", flat=True)
    )
    transaction.on_commit(lambda: _enqueue_attempts(created))
    return created


@transaction.atomic
def _delivery_claim(*, delivery_id: int) -> _Claim | None:
    now = timezone.now()
    delivery = (
        WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("endpoint", "event")
        .filter(pk=delivery_id, status__in=OPEN_STATUSES, next_attempt_at__lte=now)
        .first()
    )
    if delivery is None:
        return None
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        delivery.status = DeliveryStatus.GAVE_UP
        delivery.next_attempt_at = None
        delivery.last_error = (
            "The endpoint was deleted." if endpoint.deleted_at else "The endpoint is disabled."
        )
        delivery.save(update_fields=["status", "next_attempt_at", "last_error", "updated_at"])
        return None
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.next_attempt_at = now + CLAIM_LEASE
    delivery.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at", "updated_at"])
    return _Claim(
        delivery_id=delivery.pk,
        attempt=delivery.attempts,
        endpoint_id=endpoint.pk,
        url=endpoint.url,
        secret=endpoint.secret,
        webhook_id=delivery.webhook_id,
        body=webhook_body(delivery.event),
    )


def _send(claim: _Claim) -> _Result:
    try:
        target = ssrf.target_resolve(claim.url)
    except ssrf.UnsafeTarget as exc:
        return _Result(ok=False, error=f"Refused ({exc.code}): {exc.message}")
    timestamp = timezone.now()
    signature = Webhook(claim.secret).sign(claim.webhook_id, timestamp, claim.body)
    headers = {
        "content-type": "application/json",
        "webhook-id": claim.webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }
    try:
        response = webhook_post(
            url=claim.url,
            address=target.address,
            body=claim.body,
            headers=headers,
            timeout=REQUEST_TIMEOUT_SECONDS,
            deadline=REQUEST_DEADLINE_SECONDS,
        )
    except requests.RequestException as exc:
        return _Result(ok=False, error=f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT])
    ok = 200 <= response.status_code < 300
    return _Result(
        ok=ok,
        status_code=response.status_code,
        error="" if ok else f"HTTP {response.status_code}",
        response_body=response.body,
    )


@transaction.atomic
def _delivery_record(*, claim: _Claim, result: _Result) -> str:
    # Lock order (see the module docstring): the endpoint first, then the delivery. The
    # endpoint is only needed (and locked) when this outcome may change it: a success that
    # resets its failure count, or a give-up that counts.
    endpoint: WebhookEndpoint | None = None
    if result.ok or claim.attempt >= MAX_ATTEMPTS:
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=claim.endpoint_id).first()
    delivery = WebhookDelivery.objects.select_for_update().filter(pk=claim.delivery_id).first()
    if (
        delivery is None
        or delivery.attempts != claim.attempt
        or delivery.status not in OPEN_STATUSES
    ):
        return AttemptOutcome.SKIPPED  # a newer attempt (or a disable) owns the row now
    now = timezone.now()
    delivery.last_status_code = result.status_code
    # PostgreSQL text cannot hold NUL; a receiver's binary reply must not break recording.
    delivery.last_error = (result.error or "").replace("\x00", "\ufffd")
    delivery.last_response_body = (result.response_body or "").replace("\x00", "\ufffd")
    counted = False
    if result.ok:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.next_attempt_at = None
        delivery.delivered_at = now
        outcome = AttemptOutcome.SUCCEEDED
        if endpoint is not None and endpoint.consecutive_failures:
            endpoint.consecutive_failures = 0
            endpoint.save(update_fields=["consecutive_failures", "updated_at"])
    elif delivery.attempts < MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = now + RETRY_SCHEDULE[delivery.attempts - 1]
        outcome = AttemptOutcome.FAILED
    else:
        delivery.status = DeliveryStatus.GAVE_UP
        delivery.next_attempt_at = None
        outcome = AttemptOutcome.GAVE_UP
        # A delivery counts toward disabling once, the first time it gives up: retrying or
        # replaying a dead delivery must not disable its endpoint click by click.
        if endpoint is not None and not delivery.gave_up_counted:
            delivery.gave_up_counted = counted = True
            endpoint.consecutive_failures = F("consecutive_failures") + 1
            endpoint.save(update_fields=["consecutive_failures", "updated_at"])
            endpoint.refresh_from_db(fields=["consecutive_failures"])
    delivery.save(
        update_fields=[
            "status",
            "next_attempt_at",
            "delivered_at",
            "last_status_code",
            "last_error",
            "last_response_body",
            "gave_up_counted",
            "updated_at",
        ]
    )
    if (
        counted
        and endpoint is not None
        and endpoint.is_active
        and endpoint.consecutive_failures >= DISABLE_AFTER_GAVE_UP
    ):
        _endpoint_disable(
            endpoint=endpoint,
            reason=(
                f"{endpoint.consecutive_failures} deliveries in a row failed every attempt "
                f"(last: {result.error or 'no answer'})."
            ),
            actor=SYSTEM,
        )
    log.info(
        "webhook_attempt",
        delivery_id=claim.delivery_id,
        endpoint_id=claim.endpoint_id,
        attempt=claim.attempt,
        outcome=outcome,
        status_code=result.status_code,
    )
    return outcome


def webhook_delivery_attempt(*, delivery_id: int) -> str:
    """Send a due delivery once and record the outcome (an ``AttemptOutcome`` value).

    The claim and the record are two short transactions; the HTTP request runs between them
    with no transaction open and no row locked.
    """
    claim = _delivery_claim(delivery_id=delivery_id)
    if claim is None:
        return AttemptOutcome.SKIPPED
    try:
        result = _send(claim)
    except Exception as exc:  # never leave a claimed delivery without an outcome
        log.exception("webhook_attempt_crashed", delivery_id=delivery_id)
        result = _Result(ok=False, error=f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT])
    return _delivery_record(claim=claim, result=result)


def webhooks_deliver_due(*, limit: int = 200, budget: timedelta = timedelta(seconds=50)) -> int:
    """Queue a ``webhooks.deliver`` task per open delivery whose time has come (the beat
    sweep); return how many were queued.

    The sweep sends nothing itself: a slow receiver holds one delivery task, not the sweep.
    A delivery queued twice (a backlog spanning two sweeps) is sent once: the second task
    finds it claimed and skips it. If the broker is down the rest is left for the next sweep.
    """
    from tenants.webhooks.tasks import webhook_deliver_task

    deadline = time.monotonic() + budget.total_seconds()
    due = list(
        WebhookDelivery.objects.filter(
            status__in=OPEN_STATUSES, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    queued = 0
    for delivery_id in due:
        if time.monotonic() > deadline:
            break  # the next sweep takes the rest
        try:
            webhook_deliver_task.delay(delivery_id)
        except Exception:  # broker down (or an eager run that crashed): next sweep retries
            log.exception("webhook_enqueue_failed", delivery_id=delivery_id)
            break
        queued += 1
    return queued


def _delivery_in_flight(delivery: WebhookDelivery) -> bool:
    """Claimed by a worker whose lease has not expired (the claim sets exactly this)."""
    return (
        delivery.status in OPEN_STATUSES
        and delivery.last_attempt_at is not None
        and delivery.next_attempt_at is not None
        and delivery.next_attempt_at == delivery.last_attempt_at + CLAIM_LEASE
        and delivery.next_attempt_at > timezone.now()
    )


def _delivery_requeue(*, delivery: WebhookDelivery, actor: Actor, action: str) -> WebhookDelivery:
    endpoint = delivery.endpoint
    if endpoint.deleted_at is not None:
        raise Conflict("The webhook endpoint was deleted.", code="webhook_endpoint_deleted")
    if not endpoint.is_active:
        raise Conflict("The webhook endpoint is disabled.", code="webhook_endpoint_disabled")
    if _delivery_in_flight(delivery):
        # Making it due now would let another worker send it while this attempt runs.
        raise Conflict(
            "This delivery is being sent right now; try again when the attempt has finished.",
            code="delivery_in_flight",
        )
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = timezone.now()
    delivery.save(update_fields=["status", "next_attempt_at", "updated_at"])
    audit_record(
        actor=actor,
        action=action,
        tenant_id=endpoint.tenant_id,
        target_type="webhook_delivery",
        target_id=delivery.pk,
        data={"webhook_id": delivery.webhook_id, "endpoint_id": endpoint.pk},
    )
    delivery_id = delivery.pk
    transaction.on_commit(lambda: _enqueue_attempts([delivery_id]))
    return delivery


@transaction.atomic
def webhook_delivery_retry(
    *, tenant_id: int, endpoint_id: int, delivery_id: int, actor: Actor
) -> WebhookDelivery:
    """The tenant asks for one more attempt of one of its deliveries, now."""
    delivery = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("endpoint")
        .filter(
            pk=delivery_id,
            endpoint_id=endpoint_id,
            endpoint__tenant_id=tenant_id,
            endpoint__deleted_at__isnull=True,
        )
        .first()
    )
    if delivery is None:
        raise NotFound("No such webhook delivery.", code="webhook_delivery_not_found")
    return _delivery_requeue(delivery=delivery, actor=actor, action="webhook_delivery.retry")


@transaction.atomic
def webhook_delivery_replay(*, delivery_id: int, actor: Actor) -> WebhookDelivery:
    """Staff send a delivery again (same ``webhook-id``), whatever its status."""
    delivery = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("endpoint")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        raise NotFound("No such webhook delivery.", code="webhook_delivery_not_found")
    return _delivery_requeue(delivery=delivery, actor=actor, action="webhook_delivery.replay")

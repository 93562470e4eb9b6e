from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from core.models import AuditEntry, DomainEvent
from tenants.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tenants.webhooks.services import (
    CLAIM_LEASE,
    DISABLE_AFTER_GAVE_UP,
    MAX_ATTEMPTS,
    RETRY_SCHEDULE,
    AttemptOutcome,
    _delivery_claim,
    _delivery_record,
    _Result,
    webhook_delivery_attempt,
    webhook_id_for,
    webhooks_deliver_due,
)
from tenants.webhooks.tasks import webhooks_deliver_due_task
from tenants.webhooks.transport import RESPONSE_BODY_LIMIT
from tests.webhooks.conftest import emit, endpoint_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_private")]

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_schedule_is_about_a_day():
    total = sum(RETRY_SCHEDULE, timedelta())
    assert timedelta(hours=20) <= total <= timedelta(hours=30)
    assert len(RETRY_SCHEDULE) + 1 == MAX_ATTEMPTS
    assert list(RETRY_SCHEDULE) == sorted(RETRY_SCHEDULE)


def test_a_delivery_is_signed_per_standard_webhooks(
    alpha, receiver, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/hook")
    with time_machine.travel(START, tick=False):
        event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk, "name", "timezone")
    [got] = receiver.at("/hook")
    assert got.verified, got.error  # standardwebhooks.Webhook(secret).verify accepted it
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == webhook_id_for(event_id=event.pk, endpoint_id=endpoint.pk)
    assert got.headers["webhook-timestamp"] == str(int(START.timestamp()))
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.payload == {
        "type": "TenantUpdated",
        "timestamp": event.occurred_at.isoformat(),
        "data": {"tenant_id": alpha.tenant.pk, "fields": ["name", "timezone"]},
        "schema_version": 1,
        "event_id": str(event.pk),
    }
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 1
    assert delivery.last_status_code == 200
    assert delivery.delivered_at == START
    assert delivery.next_attempt_at is None
    # The response body is kept, truncated.
    assert len(delivery.last_response_body) == RESPONSE_BODY_LIMIT
    assert delivery.last_response_body.startswith('{"status": 200')


def test_failures_retry_on_the_schedule_then_give_up(
    alpha, receiver, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/down")
    receiver.answers["/down"] = [503]
    with time_machine.travel(START, tick=False) as traveller:
        event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
        delivery = WebhookDelivery.objects.get(event=event)
        assert delivery.status == DeliveryStatus.FAILED
        assert delivery.attempts == 1
        assert delivery.last_status_code == 503
        assert delivery.last_error == "HTTP 503"

        now = START
        for attempt, delay in enumerate(RETRY_SCHEDULE, start=2):
            assert delivery.next_attempt_at == now + delay
            # Not due a second early...
            traveller.move_to(now + delay - timedelta(seconds=1))
            assert webhooks_deliver_due() == 0
            assert len(receiver.at("/down")) == attempt - 1
            # ...and sent by the sweep once it is.
            now += delay
            traveller.move_to(now)
            with django_capture_on_commit_callbacks(execute=True):
                assert webhooks_deliver_due_task.delay().get() == 1
            delivery.refresh_from_db()
            assert delivery.attempts == attempt
            assert len(receiver.at("/down")) == attempt

        assert delivery.status == DeliveryStatus.GAVE_UP
        assert delivery.next_attempt_at is None
        traveller.shift(timedelta(days=3))
        assert webhooks_deliver_due() == 0

    requests = receiver.at("/down")
    assert len(requests) == MAX_ATTEMPTS
    assert all(r.verified for r in requests)
    # Every attempt carries the same webhook-id (receivers dedup on it), signed anew.
    assert {r.headers["webhook-id"] for r in requests} == {delivery.webhook_id}
    assert len({r.headers["webhook-timestamp"] for r in requests}) == MAX_ATTEMPTS
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 1
    assert endpoint.is_active


def test_a_success_after_failures_resets_the_failure_count(
    alpha, receiver, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/flaky")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=3)
    receiver.answers["/flaky"] = [500, 500, 204]
    with time_machine.travel(START, tick=False) as traveller:
        event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
        traveller.shift(RETRY_SCHEDULE[0])
        assert webhooks_deliver_due() == 1
        traveller.shift(RETRY_SCHEDULE[1])
        assert webhooks_deliver_due() == 1
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 3
    assert delivery.last_status_code == 204
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0


def test_redirects_are_failures_and_not_followed(
    alpha, receiver, django_capture_on_commit_callbacks
):
    endpoint_for(receiver, alpha.tenant.pk, "/moved")
    receiver.answers["/moved"] = [302]
    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_status_code == 302
    assert receiver.at("/redirected") == []


def test_a_dead_receiver_is_a_failed_attempt(alpha, receiver, django_capture_on_commit_callbacks):
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/x")
    # Point the endpoint at a loopback port nobody listens on.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"http://127.0.0.1:{free_port}/x")
    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_status_code is None
    assert "ConnectionError" in delivery.last_error


def test_an_endpoint_is_disabled_after_repeated_failure(
    alpha, receiver, django_capture_on_commit_callbacks
):
    failing = endpoint_for(receiver, alpha.tenant.pk, "/dead", ["TenantUpdated"])
    watcher = endpoint_for(receiver, alpha.tenant.pk, "/watch", ["WebhookEndpointDisabled"])
    receiver.answers["/dead"] = [500]
    with time_machine.travel(START, tick=False) as traveller:
        events = [
            emit(django_capture_on_commit_callbacks, alpha.tenant.pk, f"field{n}")
            for n in range(DISABLE_AFTER_GAVE_UP)
        ]
        for delay in RETRY_SCHEDULE:
            traveller.shift(delay)
            with django_capture_on_commit_callbacks(execute=True):
                webhooks_deliver_due()
            failing.refresh_from_db()
            if delay != RETRY_SCHEDULE[-1]:
                assert failing.is_active  # still retrying: nothing gave up yet
                assert failing.consecutive_failures == 0

    assert len(receiver.at("/dead")) == DISABLE_AFTER_GAVE_UP * MAX_ATTEMPTS
    assert set(
        WebhookDelivery.objects.filter(event__in=events).values_list("status", flat=True)
    ) == {DeliveryStatus.GAVE_UP}
    failing.refresh_from_db()
    assert not failing.is_active
    assert failing.disabled_at is not None
    assert failing.consecutive_failures == DISABLE_AFTER_GAVE_UP
    assert "in a row failed every attempt" in failing.disabled_reason

    disabled = DomainEvent.objects.get(type="WebhookEndpointDisabled", tenant_id=alpha.tenant.pk)
    assert disabled.payload["endpoint_id"] == failing.pk
    entry = AuditEntry.objects.get(action="webhook_endpoint.disable", target_id=str(failing.pk))
    assert entry.actor == "system"
    assert entry.tenant_id == alpha.tenant.pk
    # The disabling is itself delivered to the tenant's other endpoints (once, no loop).
    [notice] = receiver.at("/watch")
    assert notice.verified
    assert notice.payload["type"] == "WebhookEndpointDisabled"
    assert notice.payload["data"]["endpoint_id"] == failing.pk
    assert WebhookDelivery.objects.get(endpoint=watcher).status == DeliveryStatus.SUCCEEDED

    # A disabled endpoint receives no new deliveries.
    emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    assert len(receiver.at("/dead")) == DISABLE_AFTER_GAVE_UP * MAX_ATTEMPTS


def test_disabling_closes_the_endpoints_open_deliveries(
    alpha, receiver, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/slow")
    receiver.answers["/slow"] = [500]
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        consecutive_failures=DISABLE_AFTER_GAVE_UP - 1
    )
    with time_machine.travel(START, tick=False) as traveller:
        old = emit(django_capture_on_commit_callbacks, alpha.tenant.pk, "a")
        WebhookDelivery.objects.filter(event=old).update(attempts=MAX_ATTEMPTS - 1)
        young = emit(django_capture_on_commit_callbacks, alpha.tenant.pk, "b")
        traveller.shift(RETRY_SCHEDULE[-1])
        with django_capture_on_commit_callbacks(execute=True):
            webhooks_deliver_due()
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert WebhookDelivery.objects.get(event=old).status == DeliveryStatus.GAVE_UP
    closed = WebhookDelivery.objects.get(event=young)
    assert closed.status == DeliveryStatus.GAVE_UP
    assert closed.last_error == "The endpoint was disabled."


def test_a_claimed_delivery_is_not_sent_twice_and_a_lost_claim_expires(
    alpha, receiver, django_capture_on_commit_callbacks
):
    endpoint_for(receiver, alpha.tenant.pk, "/claim")
    receiver.answers["/claim"] = [500, 200]
    with time_machine.travel(START, tick=False) as traveller:
        event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
        delivery = WebhookDelivery.objects.get(event=event)
        traveller.shift(RETRY_SCHEDULE[0])

        # Worker A claims attempt 2 and dies before recording anything.
        lost = _delivery_claim(delivery_id=delivery.pk)
        assert lost is not None and lost.attempt == 2
        # Worker B (a task or the sweep) finds it claimed and sends nothing.
        assert webhook_delivery_attempt(delivery_id=delivery.pk) == AttemptOutcome.SKIPPED
        assert webhooks_deliver_due() == 0
        assert len(receiver.at("/claim")) == 1

        # After the lease the delivery is due again: at least once.
        traveller.shift(CLAIM_LEASE)
        assert webhook_delivery_attempt(delivery_id=delivery.pk) == AttemptOutcome.SUCCEEDED
        # Worker A's late result does not overwrite the newer attempt's.
        assert _delivery_record(claim=lost, result=_Result(ok=False, error="late")) == (
            AttemptOutcome.SKIPPED
        )
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 3
    assert delivery.last_error == ""
    requests = receiver.at("/claim")
    assert len(requests) == 2
    assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]


def test_a_finished_delivery_is_not_sent_again_by_a_stray_task(
    alpha, receiver, django_capture_on_commit_callbacks
):
    endpoint_for(receiver, alpha.tenant.pk, "/done")
    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    delivery = WebhookDelivery.objects.get(event=event)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == AttemptOutcome.SKIPPED
    assert len(receiver.at("/done")) == 1

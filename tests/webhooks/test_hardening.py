"""Regression tests: a whole-attempt deadline, the sweep only queues, a delivery's give-up
counts once, and a delivery in flight is not queued again."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime

import pytest
import time_machine

from core.errors import Conflict
from tenants.webhooks import services
from tenants.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tenants.webhooks.services import (
    CLAIM_LEASE,
    DISABLE_AFTER_GAVE_UP,
    MAX_ATTEMPTS,
    REQUEST_DEADLINE_SECONDS,
    AttemptOutcome,
    _delivery_claim,
    webhook_delivery_replay,
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhooks_deliver_due,
)
from tests.webhooks.conftest import TEST_ACTOR, emit, endpoint_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_private")]

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
DRIP_EVERY = 0.2  # seconds between two bytes of a slow receiver; below any per-read timeout


class SlowReceiver:
    """Reads a request, then answers one byte at a time, forever (until the client leaves)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.stop = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += conn.recv(65536)
                    head, _, body = request.partition(b"\r\n\r\n")
                    length = next(
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    while len(body) < length:
                        body += conn.recv(65536)
                    data = self.answer
                    while not self.stop.is_set():
                        conn.sendall(data[:1] or b"x")
                        data = data[1:]
                        time.sleep(DRIP_EVERY)
                except OSError:
                    continue  # the client gave up on us: what the test expects

    def __enter__(self) -> SlowReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.close()
        self.thread.join(timeout=5)


BODY_DRIP = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n"
HEADER_DRIP = b"HTTP/1.1 200 OK\r\nx-slow: " + b"a" * 1000


def test_the_deadline_is_well_inside_the_claim_lease():
    assert CLAIM_LEASE.total_seconds() >= REQUEST_DEADLINE_SECONDS * 10


@pytest.mark.parametrize("answer", [BODY_DRIP, HEADER_DRIP], ids=["body", "headers"])
def test_a_receiver_that_drips_its_answer_fails_within_the_deadline(
    alpha, monkeypatch, django_capture_on_commit_callbacks, answer
):
    monkeypatch.setattr(services, "REQUEST_DEADLINE_SECONDS", 1.0)
    with SlowReceiver(answer) as slow:
        webhook_endpoint_create(
            tenant_id=alpha.tenant.pk, url=f"http://127.0.0.1:{slow.port}/slow", actor=TEST_ACTOR
        )
        started = time.monotonic()
        event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
        elapsed = time.monotonic() - started
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == 1
    assert "Timeout" in delivery.last_error
    assert "within 1 s" in delivery.last_error
    assert delivery.last_status_code is None  # a 200 that never finished is no success
    assert 1.0 <= elapsed < 4.0


def test_the_sweep_queues_a_task_per_due_delivery_and_sends_nothing_itself(
    alpha, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    from tenants.webhooks.tasks import webhook_deliver_task

    endpoint_for(receiver, alpha.tenant.pk, "/q")
    receiver.answers["/q"] = [500]
    with time_machine.travel(START, tick=False) as traveller:
        events = [
            emit(django_capture_on_commit_callbacks, alpha.tenant.pk, f"f{n}") for n in (1, 2)
        ]
        assert len(receiver.at("/q")) == 2
        traveller.shift(services.RETRY_SCHEDULE[0])
        queued: list[int] = []
        monkeypatch.setattr(webhook_deliver_task, "delay", queued.append)
        assert webhooks_deliver_due() == 2
    assert sorted(queued) == sorted(
        WebhookDelivery.objects.filter(event__in=events).values_list("pk", flat=True)
    )
    assert len(receiver.at("/q")) == 2  # nothing sent by the sweep


def test_the_sweep_leaves_due_deliveries_for_later_when_the_broker_is_down(
    alpha, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    from tenants.webhooks.tasks import webhook_deliver_task

    endpoint_for(receiver, alpha.tenant.pk, "/broker")
    receiver.answers["/broker"] = [500]
    with time_machine.travel(START, tick=False) as traveller:
        event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
        traveller.shift(services.RETRY_SCHEDULE[0])

        def broker_down(delivery_id: int) -> None:
            raise ConnectionError("broker down")

        monkeypatch.setattr(webhook_deliver_task, "delay", broker_down)
        assert webhooks_deliver_due() == 0
        delivery = WebhookDelivery.objects.get(event=event)
        assert delivery.status == DeliveryStatus.FAILED
        assert delivery.attempts == 1
        monkeypatch.undo()
        # The next sweep (broker back) sends it.
        assert webhooks_deliver_due() == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 2


def _gave_up_delivery(receiver, alpha, path, capture) -> tuple[WebhookEndpoint, WebhookDelivery]:
    endpoint = endpoint_for(receiver, alpha.tenant.pk, path)
    receiver.answers[path] = [500]
    event = emit(capture, alpha.tenant.pk)
    WebhookDelivery.objects.filter(event=event).update(attempts=MAX_ATTEMPTS - 1)
    with capture(execute=True):
        webhook_delivery_retry(
            tenant_id=alpha.tenant.pk,
            endpoint_id=endpoint.pk,
            delivery_id=WebhookDelivery.objects.get(event=event).pk,
            actor=TEST_ACTOR,
        )
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.GAVE_UP
    assert delivery.gave_up_counted
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 1
    return endpoint, delivery


def test_retrying_a_dead_delivery_again_and_again_counts_its_give_up_once(
    alpha, receiver, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    endpoint, delivery = _gave_up_delivery(receiver, alpha, "/dead", capture)
    for _ in range(DISABLE_AFTER_GAVE_UP + 1):
        with capture(execute=True):
            webhook_delivery_retry(
                tenant_id=alpha.tenant.pk,
                endpoint_id=endpoint.pk,
                delivery_id=delivery.pk,
                actor=TEST_ACTOR,
            )
        with capture(execute=True):
            webhook_delivery_replay(delivery_id=delivery.pk, actor=TEST_ACTOR)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.GAVE_UP
    assert delivery.attempts == MAX_ATTEMPTS + 2 * (DISABLE_AFTER_GAVE_UP + 1)
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 1  # one dead delivery, not twelve
    assert endpoint.is_active


def test_another_delivery_giving_up_still_counts(
    alpha, receiver, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    endpoint, _ = _gave_up_delivery(receiver, alpha, "/two", capture)
    event = emit(capture, alpha.tenant.pk, "other")
    second = WebhookDelivery.objects.get(event=event)
    WebhookDelivery.objects.filter(pk=second.pk).update(attempts=MAX_ATTEMPTS - 1)
    with capture(execute=True):
        webhook_delivery_replay(delivery_id=second.pk, actor=TEST_ACTOR)
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 2


def test_a_delivery_in_flight_cannot_be_retried_or_replayed(
    alpha, alpha_client, receiver, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/busy")
    receiver.answers["/busy"] = [500, 200]
    with time_machine.travel(START, tick=False) as traveller:
        event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
        delivery = WebhookDelivery.objects.get(event=event)
        traveller.shift(services.RETRY_SCHEDULE[0])
        claim = _delivery_claim(delivery_id=delivery.pk)  # a worker is sending attempt 2
        assert claim is not None

        response = alpha_client.post(
            f"/api/v1/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/retry/"
        )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "delivery_in_flight"
        with pytest.raises(Conflict) as refused:
            webhook_delivery_replay(delivery_id=delivery.pk, actor=TEST_ACTOR)
        assert refused.value.code == "delivery_in_flight"
        delivery.refresh_from_db()
        assert delivery.next_attempt_at == START + services.RETRY_SCHEDULE[0] + CLAIM_LEASE
        assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == (
            AttemptOutcome.SKIPPED
        )
        assert len(receiver.at("/busy")) == 1

        # A worker that died leaves its lease to expire; then a retry is accepted again.
        traveller.shift(CLAIM_LEASE)
        with django_capture_on_commit_callbacks(execute=True):
            response = alpha_client.post(
                f"/api/v1/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/retry/"
            )
        assert response.status_code == 202
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert len(receiver.at("/busy")) == 2

from __future__ import annotations

import pytest
from django.db import transaction
from django_tenants.utils import schema_context

from core.events import event_dispatch
from core.models import DomainEvent
from tenants.webhooks.models import DeliveryStatus, WebhookDelivery
from tenants.webhooks.services import webhook_event_fan_out, webhook_id_for
from tenants.workspace.models import ApiKey
from tenants.workspace.services import api_key_create
from tests.webhooks.conftest import TEST_ACTOR, emit, endpoint_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_private")]


def test_change_event_and_delivery_commit_together(
    alpha, alpha_client, receiver, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/keys", ["ApiKeyCreated"])
    with django_capture_on_commit_callbacks(execute=True):
        response = alpha_client.post("/api/v1/api-keys/", {"name": "ci"}, format="json")
    assert response.status_code == 201
    key_id = response.json()["id"]
    with schema_context(alpha.tenant.schema_name):
        assert ApiKey.objects.filter(pk=key_id).exists()
    event = DomainEvent.objects.get(type="ApiKeyCreated", tenant_id=alpha.tenant.pk)
    assert event.payload["api_key_id"] == key_id
    assert event.dispatched_at is not None
    delivery = WebhookDelivery.objects.get(endpoint=endpoint, event=event)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    [got] = receiver.at("/keys")
    assert got.verified
    assert got.payload["type"] == "ApiKeyCreated"
    assert got.payload["data"]["api_key_id"] == key_id


def test_change_event_and_delivery_roll_back_together(
    alpha, receiver, django_capture_on_commit_callbacks
):
    endpoint_for(receiver, alpha.tenant.pk, "/keys")
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
        schema_context(alpha.tenant.schema_name),
    ):
        api_key_create(name="doomed", actor=TEST_ACTOR)
        raise RuntimeError("the change failed after the event was recorded")
    assert callbacks == []
    with schema_context(alpha.tenant.schema_name):
        assert not ApiKey.objects.filter(name="doomed").exists()
    assert not DomainEvent.objects.filter(type="ApiKeyCreated", tenant_id=alpha.tenant.pk).exists()
    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []


def test_fan_out_reaches_only_the_tenants_own_subscribed_endpoints(
    alpha, beta, receiver, django_capture_on_commit_callbacks
):
    all_types = endpoint_for(receiver, alpha.tenant.pk, "/alpha-all")
    subscribed = endpoint_for(receiver, alpha.tenant.pk, "/alpha-updated", ["TenantUpdated"])
    endpoint_for(receiver, alpha.tenant.pk, "/alpha-keys-only", ["ApiKeyCreated"])
    endpoint_for(receiver, beta.tenant.pk, "/beta-all")

    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk, "name")

    deliveries = WebhookDelivery.objects.filter(event=event)
    assert {d.endpoint_id for d in deliveries} == {all_types.pk, subscribed.pk}
    assert {r.path for r in receiver.requests} == {"/alpha-all", "/alpha-updated"}
    assert all(r.verified for r in receiver.requests)
    for delivery in deliveries:
        assert delivery.webhook_id == webhook_id_for(
            event_id=event.pk, endpoint_id=delivery.endpoint_id
        )


def test_events_without_a_tenant_go_nowhere(alpha, receiver, django_capture_on_commit_callbacks):
    from core.events import event_record

    endpoint_for(receiver, alpha.tenant.pk, "/all")
    with django_capture_on_commit_callbacks(execute=True):
        event_record(type="PlanVersionCreated", payload={"plan": "pro"})
    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []


def test_fan_out_is_idempotent_when_the_outbox_dispatches_twice(
    alpha, receiver, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/once")
    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    assert WebhookDelivery.objects.filter(event=event).count() == 1

    # The outbox sweep may run the subscribers again (e.g. a crash before it marked the row).
    DomainEvent.objects.filter(pk=event.pk).update(dispatched_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert event_dispatch(event_id=event.pk) is True
        assert webhook_event_fan_out(event=event) == []
    assert WebhookDelivery.objects.filter(event=event, endpoint=endpoint).count() == 1
    assert len(receiver.at("/once")) == 1  # not sent again either


def test_inactive_and_deleted_endpoints_get_nothing(
    alpha, receiver, django_capture_on_commit_callbacks
):
    from tenants.webhooks.services import webhook_endpoint_delete

    gone = endpoint_for(receiver, alpha.tenant.pk, "/gone")
    webhook_endpoint_delete(tenant_id=alpha.tenant.pk, endpoint_id=gone.pk, actor=TEST_ACTOR)
    off = endpoint_for(receiver, alpha.tenant.pk, "/off")
    type(off).objects.filter(pk=off.pk).update(is_active=False)
    emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []

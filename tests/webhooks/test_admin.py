from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core.models import AuditEntry
from tenants.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tests.webhooks.conftest import emit, endpoint_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_private")]


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser(
        "hookstaff", "hooks@example.com", "pw-not-used-elsewhere"
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def test_staff_see_every_tenants_endpoints_and_deliveries_but_no_secret(
    staff_client, alpha, beta, receiver, django_capture_on_commit_callbacks
):
    mine = endpoint_for(receiver, alpha.tenant.pk, "/alpha-hook")
    endpoint_for(receiver, beta.tenant.pk, "/beta-hook")
    emit(django_capture_on_commit_callbacks, alpha.tenant.pk)

    page = staff_client.get("/admin/webhooks/webhookendpoint/")
    assert page.status_code == 200
    assert b"/alpha-hook" in page.content and b"/beta-hook" in page.content
    only_beta = staff_client.get(
        "/admin/webhooks/webhookendpoint/", {"tenant__id__exact": beta.tenant.pk}
    )
    assert b"/alpha-hook" not in only_beta.content and b"/beta-hook" in only_beta.content
    detail = staff_client.get(f"/admin/webhooks/webhookendpoint/{mine.pk}/change/")
    assert detail.status_code == 200
    assert mine.secret.encode() not in detail.content

    deliveries = staff_client.get("/admin/webhooks/webhookdelivery/", {"status": "succeeded"})
    assert deliveries.status_code == 200
    delivery = WebhookDelivery.objects.get(endpoint=mine)
    assert delivery.webhook_id.encode() in deliveries.content
    assert staff_client.get("/admin/webhooks/webhookdelivery/add/").status_code == 403


def test_staff_replay_a_delivery(staff_client, alpha, receiver, django_capture_on_commit_callbacks):
    endpoint_for(receiver, alpha.tenant.pk, "/replay")
    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.SUCCEEDED

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/webhooks/webhookdelivery/",
            {"action": "replay", "_selected_action": [delivery.pk]},
        )
    assert response.status_code == 302
    first, second = receiver.at("/replay")
    assert second.verified
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert delivery.status == DeliveryStatus.SUCCEEDED
    entry = AuditEntry.objects.get(action="webhook_delivery.replay", target_id=str(delivery.pk))
    assert entry.actor == "staff:hookstaff"


def test_replay_to_a_disabled_endpoint_is_reported_not_sent(
    staff_client, alpha, receiver, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/off")
    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    delivery = WebhookDelivery.objects.get(event=event)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    response = staff_client.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "replay", "_selected_action": [delivery.pk]},
        follow=True,
    )
    assert b"disabled" in response.content
    assert len(receiver.at("/off")) == 1


def test_staff_re_enable_a_disabled_endpoint(
    staff_client, alpha, receiver, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    endpoint = endpoint_for(receiver, alpha.tenant.pk, "/back")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=False, disabled_at=timezone.now(), disabled_reason="x", consecutive_failures=5
    )
    listing = staff_client.get("/admin/webhooks/webhookendpoint/", {"is_active__exact": "0"})
    assert b"/back" in listing.content
    response = staff_client.post(
        "/admin/webhooks/webhookendpoint/", {"action": "enable", "_selected_action": [endpoint.pk]}
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.is_active
    assert endpoint.disabled_at is None
    assert endpoint.consecutive_failures == 0
    assert AuditEntry.objects.filter(
        action="webhook_endpoint.enable", target_id=str(endpoint.pk), actor="staff:hookstaff"
    ).exists()
    emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    assert len(receiver.at("/back")) == 1

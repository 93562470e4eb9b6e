from __future__ import annotations

import pytest
from standardwebhooks import Webhook

from core.models import AuditEntry
from tenants.webhooks.catalog import WEBHOOK_EVENT_TYPES
from tenants.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tenants.webhooks.services import MAX_ENDPOINTS_PER_TENANT
from tests.webhooks.conftest import emit

pytestmark = pytest.mark.django_db


def field_code(response, name):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"]["code"] == "validation_error"
    return body["error"]["details"][name][0]["code"]


def create(client, receiver, path, **extra):
    body = {"url": receiver.url(path), **extra}
    response = client.post("/api/v1/webhooks/", body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    receiver.secrets[path] = created["secret"]
    return created


@pytest.mark.usefixtures("allow_private")
def test_create_shows_the_secret_once(alpha_client, alpha, receiver):
    created = create(
        alpha_client,
        receiver,
        "/a",
        event_types=["TenantUpdated", "ApiKeyCreated", "TenantUpdated"],
        description="CRM sync",
    )
    assert created["secret"].startswith("whsec_")
    Webhook(created["secret"])  # a valid Standard Webhooks secret
    assert created["event_types"] == ["ApiKeyCreated", "TenantUpdated"]
    assert created["description"] == "CRM sync"
    assert created["is_active"] is True

    listing = alpha_client.get("/api/v1/webhooks/").json()
    assert [e["id"] for e in listing] == [created["id"]]
    assert all("secret" not in e for e in listing)
    detail = alpha_client.get(f"/api/v1/webhooks/{created['id']}/").json()
    assert "secret" not in detail
    assert created["secret"] not in str(detail)
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    assert endpoint.tenant_id == alpha.tenant.pk
    assert endpoint.secret == created["secret"]
    assert AuditEntry.objects.filter(
        action="webhook_endpoint.create", target_id=str(endpoint.pk), tenant_id=alpha.tenant.pk
    ).exists()


def test_empty_event_types_mean_all(alpha_client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    settings.DEBUG = False
    response = alpha_client.post(
        "/api/v1/webhooks/", {"url": "https://hooks.example.com/in"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["event_types"] == []
    assert WebhookEndpoint.objects.get(pk=response.json()["id"]).receives("QuotaExceeded")


@pytest.mark.usefixtures("strict_targets")
@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "url", "required"),
        ({"url": "not a url"}, "url", "invalid"),
        ({"url": "http://hooks.example.com/in"}, "url", "https_required"),
        ({"url": "https://10.1.2.3/in"}, "url", "private_address"),
        ({"url": "https://169.254.169.254/latest"}, "url", "private_address"),
        ({"url": "https://[::1]/in"}, "url", "private_address"),
        ({"url": "https://localhost/in"}, "url", "private_address"),
        ({"url": "https://me:pw@hooks.example.com/in"}, "url", "credentials_not_allowed"),
        (
            {"url": "https://hooks.example.com/in", "event_types": ["TenantUpdated", "Nope"]},
            "event_types",
            "unknown_event_type",
        ),
        (
            {"url": "https://hooks.example.com/in", "event_types": "TenantUpdated"},
            "event_types",
            "not_a_list",
        ),
    ],
)
def test_invalid_input_is_400_with_a_field_code(alpha_client, body, field, code):
    response = alpha_client.post("/api/v1/webhooks/", body, format="json")
    assert field_code(response, field) == code
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.usefixtures("strict_targets")
def test_a_tenant_has_a_limited_number_of_endpoints(alpha_client, alpha):
    for n in range(MAX_ENDPOINTS_PER_TENANT):
        response = alpha_client.post(
            "/api/v1/webhooks/", {"url": f"https://hooks.example.com/{n}"}, format="json"
        )
        assert response.status_code == 201
    response = alpha_client.post(
        "/api/v1/webhooks/", {"url": "https://hooks.example.com/more"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_endpoint_limit"


def test_the_catalog_lists_every_type_the_issues_name():
    for name in (
        "TenantCreated",
        "TenantActivated",
        "TenantSuspended",
        "TenantClosed",
        "TenantProvisioningFailed",
        "TenantUpdated",
        "TenantDomainsChanged",
        "ApiKeyCreated",
        "ApiKeyRevoked",
        "WebhookEndpointDisabled",
        "SubscriptionCreated",
        "SubscriptionUpgraded",
        "SubscriptionDowngradeScheduled",
        "SubscriptionCancelled",
        "SubscriptionResumed",
        "SubscriptionRenewed",
        "SubscriptionExpired",
        "InvoicePaid",
        "PaymentFailed",
        "QuotaWarning",
        "QuotaExceeded",
    ):
        assert name in WEBHOOK_EVENT_TYPES
    assert len(set(WEBHOOK_EVENT_TYPES)) == len(WEBHOOK_EVENT_TYPES)


@pytest.mark.usefixtures("allow_private")
def test_delete_is_204_then_gone_with_history_kept(
    alpha_client, alpha, receiver, django_capture_on_commit_callbacks
):
    created = create(alpha_client, receiver, "/bye")
    emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    assert alpha_client.delete(f"/api/v1/webhooks/{created['id']}/").status_code == 204
    assert alpha_client.get("/api/v1/webhooks/").json() == []
    again = alpha_client.delete(f"/api/v1/webhooks/{created['id']}/")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "webhook_endpoint_not_found"
    assert alpha_client.get(f"/api/v1/webhooks/{created['id']}/deliveries/").status_code == 404
    # Staff keep the endpoint and its deliveries; nothing more is sent to it.
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    assert endpoint.deleted_at is not None and not endpoint.is_active
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1
    emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    assert len(receiver.at("/bye")) == 1
    assert AuditEntry.objects.filter(
        action="webhook_endpoint.delete", target_id=str(endpoint.pk)
    ).exists()


@pytest.mark.usefixtures("allow_private")
def test_deliveries_are_listed_newest_first_with_status_codes_and_paginated(
    alpha_client, alpha, receiver, django_capture_on_commit_callbacks
):
    created = create(alpha_client, receiver, "/list")
    receiver.answers["/list"] = [500, 200, 200]
    first = emit(django_capture_on_commit_callbacks, alpha.tenant.pk, "a")
    second = emit(django_capture_on_commit_callbacks, alpha.tenant.pk, "b")
    third = emit(django_capture_on_commit_callbacks, alpha.tenant.pk, "c")
    url = f"/api/v1/webhooks/{created['id']}/deliveries/"
    page = alpha_client.get(url, {"limit": 2}).json()
    assert page["count"] == 3
    assert [d["event_id"] for d in page["results"]] == [str(third.pk), str(second.pk)]
    assert page["next"] is not None
    rest = alpha_client.get(url, {"limit": 2, "offset": 2}).json()
    [oldest] = rest["results"]
    assert oldest["event_id"] == str(first.pk)
    assert oldest["event_type"] == "TenantUpdated"
    assert oldest["status"] == DeliveryStatus.FAILED
    assert oldest["last_status_code"] == 500
    assert oldest["attempts"] == 1
    assert oldest["next_attempt_at"] is not None
    assert page["results"][0]["last_status_code"] == 200
    assert page["results"][0]["webhook_id"].startswith("msg_")


@pytest.mark.usefixtures("allow_private")
def test_retry_sends_again_now_with_the_same_webhook_id(
    alpha_client, alpha, receiver, django_capture_on_commit_callbacks
):
    created = create(alpha_client, receiver, "/retry")
    receiver.answers["/retry"] = [500, 200]
    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        response = alpha_client.post(
            f"/api/v1/webhooks/{created['id']}/deliveries/{delivery.pk}/retry/"
        )
    assert response.status_code == 202
    assert response.json()["id"] == delivery.pk
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 2
    first, second = receiver.at("/retry")
    assert first.verified and second.verified
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.webhook_id
    assert AuditEntry.objects.filter(
        action="webhook_delivery.retry", target_id=str(delivery.pk), actor__startswith="apikey:"
    ).exists()


@pytest.mark.usefixtures("allow_private")
def test_retry_of_a_disabled_endpoint_is_409(
    alpha_client, alpha, receiver, django_capture_on_commit_callbacks
):
    created = create(alpha_client, receiver, "/off")
    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    delivery = WebhookDelivery.objects.get(event=event)
    WebhookEndpoint.objects.filter(pk=created["id"]).update(is_active=False)
    response = alpha_client.post(
        f"/api/v1/webhooks/{created['id']}/deliveries/{delivery.pk}/retry/"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_endpoint_disabled"


@pytest.mark.usefixtures("allow_private")
def test_a_tenant_never_sees_or_touches_another_tenants_endpoints(
    alpha_client, beta_client, alpha, beta, receiver, django_capture_on_commit_callbacks
):
    mine = create(alpha_client, receiver, "/alpha")
    theirs = create(beta_client, receiver, "/beta")
    event = emit(django_capture_on_commit_callbacks, alpha.tenant.pk)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.endpoint_id == mine["id"]

    assert [e["id"] for e in beta_client.get("/api/v1/webhooks/").json()] == [theirs["id"]]
    for response in (
        beta_client.get(f"/api/v1/webhooks/{mine['id']}/"),
        beta_client.delete(f"/api/v1/webhooks/{mine['id']}/"),
        beta_client.get(f"/api/v1/webhooks/{mine['id']}/deliveries/"),
        beta_client.post(f"/api/v1/webhooks/{mine['id']}/deliveries/{delivery.pk}/retry/"),
        # beta's own endpoint id with alpha's delivery id
        beta_client.post(f"/api/v1/webhooks/{theirs['id']}/deliveries/{delivery.pk}/retry/"),
    ):
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"].startswith("webhook_")
    endpoint = WebhookEndpoint.objects.get(pk=mine["id"])
    assert endpoint.deleted_at is None and endpoint.is_active
    assert len(receiver.at("/alpha")) == 1  # no retry was sent
    assert receiver.at("/beta") == []  # beta got nothing of alpha's


def test_the_api_needs_a_key_and_is_documented(api, alpha):
    response = api.get("/api/v1/webhooks/", HTTP_HOST=alpha.host)
    assert response.status_code == 401
    schema = api.get(
        "/api/v1/schema/", HTTP_HOST="localhost", HTTP_ACCEPT="application/json"
    ).json()
    for path in (
        "/api/v1/webhooks/",
        "/api/v1/webhooks/{endpoint_id}/",
        "/api/v1/webhooks/{endpoint_id}/deliveries/",
        "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry/",
    ):
        assert path in schema["paths"], path

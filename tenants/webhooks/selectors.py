"""Reads of webhook endpoints and deliveries, always scoped to one tenant."""

from __future__ import annotations

from django.db.models import QuerySet

from core.errors import NotFound
from tenants.webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list(*, tenant_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(tenant_id=tenant_id, deleted_at__isnull=True)


def webhook_endpoint_get(*, tenant_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = webhook_endpoint_list(tenant_id=tenant_id).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", code="webhook_endpoint_not_found")
    return endpoint


def webhook_delivery_list(*, tenant_id: int, endpoint_id: int) -> QuerySet[WebhookDelivery]:
    """The endpoint's deliveries, newest first (404 if the endpoint is not the tenant's)."""
    endpoint = webhook_endpoint_get(tenant_id=tenant_id, endpoint_id=endpoint_id)
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .order_by("-created_at", "-id")
    )

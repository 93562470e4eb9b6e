"""Every domain event with a tenant fans out to that tenant's webhook endpoints."""

from __future__ import annotations

from core.events import subscriber_batch
from core.models import DomainEvent
from tenants.webhooks.models import WebhookEndpoint
from tenants.webhooks.services import webhook_event_fan_out


@subscriber_batch
def webhooks_fan_out(events: list[DomainEvent]) -> None:
    """One query finds which of the events' tenants have endpoints at all; only their events
    are fanned out (most tenants have none, and a dispatch may carry thousands of events)."""
    tenant_ids = {e.tenant_id for e in events if e.tenant_id is not None}
    if not tenant_ids:
        return
    with_endpoints = set(
        WebhookEndpoint.objects.filter(
            tenant_id__in=tenant_ids, is_active=True, deleted_at__isnull=True
        )
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    for event in events:
        if event.tenant_id in with_endpoints:
            webhook_event_fan_out(event=event)

"""Every domain event with a tenant fans out to that tenant's webhook endpoints."""

from __future__ import annotations

from core.events import ALL, subscriber
from core.models import DomainEvent
from tenants.webhooks.services import webhook_event_fan_out


@subscriber(ALL)
def webhooks_fan_out(event: DomainEvent) -> None:
    webhook_event_fan_out(event=event)

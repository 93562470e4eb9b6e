from __future__ import annotations

from core.events import subscriber
from core.models import DomainEvent
from subscriptions.subscribers import SUBSCRIPTION_EVENTS
from usage.limits import tenant_limits_invalidate


@subscriber(*SUBSCRIPTION_EVENTS)
def invalidate_limits(event: DomainEvent) -> None:
    if event.tenant_id is not None:
        tenant_limits_invalidate(tenant_id=event.tenant_id)

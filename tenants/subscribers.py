"""In-process reactions to tenant events (read from the outbox after commit)."""

from __future__ import annotations

from core.events import subscriber
from core.models import DomainEvent
from tenants.routing import routes_invalidate_tenant

TENANT_ROUTE_EVENTS = (
    "TenantCreated",
    "TenantActivated",
    "TenantSuspended",
    "TenantClosed",
    "TenantProvisioningFailed",
    "TenantProvisioningRetried",
    "TenantDomainsChanged",
    "TenantUpdated",
)


@subscriber(*TENANT_ROUTE_EVENTS)
def invalidate_routes(event: DomainEvent) -> None:
    if event.tenant_id is None:
        return
    former = event.payload.get("former_hosts", [])
    routes_invalidate_tenant(event.tenant_id, extra_hosts=former)

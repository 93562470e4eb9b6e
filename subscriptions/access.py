"""Whether a tenant's subscription lets it use the API, cached per tenant.

The answer is cached in Redis and in the process's tenant snapshot (``core.snapshots``), both
dropped by every subscription event (see ``subscriptions.subscribers``), so a warm request
makes no query and no extra Redis round trip for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from django.core.cache import caches
from django.utils import timezone

from core.cache import safe_delete_many, safe_get, safe_set
from core.snapshots import generation_bump, snapshot_value
from subscriptions.models import CURRENT_STATUSES, Subscription, SubscriptionStatus
from subscriptions.services import past_due_grace

ACCESS_TTL = 300
_IN_USE = frozenset({SubscriptionStatus.TRIALING.value, SubscriptionStatus.ACTIVE.value})


@dataclass(frozen=True)
class SubscriptionAccess:
    status: str  # a SubscriptionStatus, or "none"
    grace_until: str | None = None  # ISO time a past-due subscription stops working

    def allows(self, now: datetime) -> bool:
        if self.status in _IN_USE:
            return True
        if self.status == SubscriptionStatus.PAST_DUE and self.grace_until is not None:
            return now < datetime.fromisoformat(self.grace_until)
        return False


def access_key(tenant_id: int) -> str:
    return f"subscription:access:{tenant_id}"


def _load(tenant_id: int) -> SubscriptionAccess:
    row = (
        Subscription.objects.filter(tenant_id=tenant_id, status__in=CURRENT_STATUSES)
        .values("status", "past_due_since")
        .first()
    )
    if row is None:
        return SubscriptionAccess(status="none")
    grace = None
    if row["status"] == SubscriptionStatus.PAST_DUE and row["past_due_since"] is not None:
        grace = (row["past_due_since"] + past_due_grace()).isoformat()
    return SubscriptionAccess(status=row["status"], grace_until=grace)


def subscription_access(*, tenant_id: int) -> SubscriptionAccess:
    return snapshot_value(tenant_id, "access", _cached_access, tenant_id)


def _cached_access(tenant_id: int) -> SubscriptionAccess:
    cache = caches["shared"]
    cached = safe_get(cache, access_key(tenant_id))
    if cached is None:
        access = _load(tenant_id)
        safe_set(cache, access_key(tenant_id), asdict(access), ACCESS_TTL)
        return access
    return SubscriptionAccess(**cached)


def subscription_access_allows(*, tenant_id: int) -> tuple[bool, SubscriptionAccess]:
    access = subscription_access(tenant_id=tenant_id)
    if access.status in _IN_USE:  # the usual case needs no clock
        return True, access
    return access.allows(timezone.now()), access


def subscription_access_invalidate(*, tenant_id: int) -> None:
    safe_delete_many(caches["shared"], [access_key(tenant_id)])
    generation_bump(tenant_id)

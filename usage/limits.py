"""A tenant's current limits (period, rate, quotas), cached so the hot path never queries.

Built from the current subscription and its plan version; cached in Redis and in the
process's tenant snapshot (``core.snapshots``), both dropped by every subscription event
(``usage.subscribers``); the Redis entry expires after ``LIMITS_TTL`` in any case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from django.core.cache import caches

from core.cache import safe_delete_many, safe_get, safe_set
from core.snapshots import generation_bump, snapshot_value
from subscriptions.models import CURRENT_STATUSES, Subscription

LIMITS_TTL = 300
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def period_key_of(moment: datetime) -> int:
    """A period start as an exact integer (microseconds since the epoch) for Redis keys."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def period_start_of(key: int) -> datetime:
    return EPOCH + timedelta(microseconds=key)


@dataclass(frozen=True)
class MetricLimit:
    limit: int | None  # None: unlimited
    overage_unit_price: int | None  # None: a hard limit
    overage_unit_size: int = 1

    @property
    def is_hard(self) -> bool:
        return self.limit is not None and self.overage_unit_price is None


@dataclass(frozen=True)
class TenantLimits:
    tenant_id: int
    period_start: datetime
    period_end: datetime
    rate_limit_per_minute: int | None
    quotas: dict[str, MetricLimit] = field(default_factory=dict)

    @cached_property
    def period_key(self) -> int:
        return period_key_of(self.period_start)

    @cached_property
    def meter_args(self) -> tuple[int, int, int, int, int]:
        """(period key, calls quota, calls hard, bandwidth quota, bandwidth hard) within the
        period, as the metering script takes them (-1: unlimited; 1/0: hard or not)."""
        calls = self.quotas.get("api_calls")
        quota = -1 if calls is None or calls.limit is None else calls.limit
        hard = 1 if calls is not None and calls.is_hard else 0
        bandwidth = self.quotas.get("bandwidth_bytes")
        bw_quota, bw_hard = -1, 0
        if bandwidth is not None and bandwidth.limit is not None:
            bw_quota, bw_hard = bandwidth.limit, 1 if bandwidth.is_hard else 0
        return self.period_key, quota, hard, bw_quota, bw_hard

    def as_cache(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "rate_limit_per_minute": self.rate_limit_per_minute,
            "quotas": {
                m: [q.limit, q.overage_unit_price, q.overage_unit_size]
                for m, q in self.quotas.items()
            },
        }

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> TenantLimits:
        return cls(
            tenant_id=data["tenant_id"],
            period_start=datetime.fromisoformat(data["period_start"]),
            period_end=datetime.fromisoformat(data["period_end"]),
            rate_limit_per_minute=data["rate_limit_per_minute"],
            quotas={m: MetricLimit(*q) for m, q in data["quotas"].items()},
        )


def limits_key(tenant_id: int) -> str:
    return f"usage:limits:{tenant_id}"


def limits_load(tenant_id: int) -> TenantLimits | None:
    sub = (
        Subscription.objects.select_related("plan_version")
        .prefetch_related("plan_version__quotas")
        .filter(tenant_id=tenant_id, status__in=CURRENT_STATUSES)
        .first()
    )
    if sub is None:
        return None
    version = sub.plan_version
    return TenantLimits(
        tenant_id=tenant_id,
        period_start=sub.current_period_start,
        period_end=sub.current_period_end,
        rate_limit_per_minute=version.rate_limit_per_minute,
        quotas={
            q.metric: MetricLimit(q.limit, q.overage_unit_price, q.overage_unit_size)
            for q in version.quotas.all()
        },
    )


def tenant_limits(*, tenant_id: int) -> TenantLimits | None:
    return snapshot_value(tenant_id, "limits", _cached_limits, tenant_id)


def _cached_limits(tenant_id: int) -> TenantLimits | None:
    cache = caches["shared"]
    cached = safe_get(cache, limits_key(tenant_id))
    if cached is not None:
        return None if cached.get("none") else TenantLimits.from_cache(cached)
    limits = limits_load(tenant_id)
    safe_set(
        cache, limits_key(tenant_id), limits.as_cache() if limits else {"none": True}, LIMITS_TTL
    )
    return limits


def tenant_limits_invalidate(*, tenant_id: int) -> None:
    safe_delete_many(caches["shared"], [limits_key(tenant_id)])
    generation_bump(tenant_id)

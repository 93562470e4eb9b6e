"""Reads of usage: the live summary, daily series and the period totals billing uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import redis
from django.db.models import Max, Sum

from usage.limits import TenantLimits, tenant_limits
from usage.meter import period_counter_key, redis_client
from usage.metrics import API_CALLS, BANDWIDTH_BYTES, GAUGES, STORAGE_BYTES
from usage.models import UsageRecord

LIVE_METRICS = (API_CALLS, BANDWIDTH_BYTES, STORAGE_BYTES)


def usage_period_totals(*, tenant_id: int, period_start: datetime) -> dict[str, int]:
    """Durable totals of one subscription period, per metric (gauges: their maximum).

    What billing's overage lines use. Counters still in Redis are not included: run the
    flush (``usage.services.usage_flush``) first when invoicing a period that just closed.
    """
    rows = UsageRecord.objects.filter(tenant_id=tenant_id, period_start=period_start)
    totals = {
        r["metric"]: int(r["total"])
        for r in rows.exclude(metric__in=GAUGES).values("metric").annotate(total=Sum("quantity"))
    }
    totals.update(
        {
            r["metric"]: int(r["peak"])
            for r in rows.filter(metric__in=GAUGES).values("metric").annotate(peak=Max("quantity"))
        }
    )
    return totals


@dataclass(frozen=True)
class MetricUsage:
    metric: str
    used: int
    limit: int | None
    remaining: int | None
    overage: int
    overage_unit_price: int | None
    overage_unit_size: int


@dataclass(frozen=True)
class UsageSummary:
    period_start: datetime
    period_end: datetime
    metrics: list[MetricUsage]


def _live(limits: TenantLimits) -> dict[str, int]:
    try:
        client = redis_client()
        values = client.mget(
            [period_counter_key(limits.tenant_id, m, limits.period_key) for m in LIVE_METRICS]
        )
    except redis.RedisError:
        return {}
    return {m: int(v) for m, v in zip(LIVE_METRICS, values, strict=True) if v is not None}


def usage_summary(*, tenant_id: int) -> UsageSummary | None:
    """Per metric of the plan (and the built-in ones): used, limit, remaining, overage.

    API calls and bandwidth come from the live Redis counters (falling back to the durable
    totals when Redis is unavailable); custom metrics from PostgreSQL, where ingestion
    commits them.
    """
    limits = tenant_limits(tenant_id=tenant_id)
    if limits is None:
        return None
    durable = usage_period_totals(tenant_id=tenant_id, period_start=limits.period_start)
    live = _live(limits)
    metrics = sorted(set(limits.quotas) | set(LIVE_METRICS))
    out = []
    for metric in metrics:
        used = (
            max(live.get(metric, 0), durable.get(metric, 0))
            if metric in LIVE_METRICS
            else durable.get(metric, 0)
        )
        quota = limits.quotas.get(metric)
        limit = quota.limit if quota else None
        out.append(
            MetricUsage(
                metric=metric,
                used=used,
                limit=limit,
                remaining=None if limit is None else max(0, limit - used),
                overage=0 if limit is None else max(0, used - limit),
                overage_unit_price=quota.overage_unit_price if quota else None,
                overage_unit_size=quota.overage_unit_size if quota else 1,
            )
        )
    return UsageSummary(period_start=limits.period_start, period_end=limits.period_end, metrics=out)


def usage_daily(*, tenant_id: int, metric: str, start: date, end: date) -> list[tuple[date, int]]:
    """Daily totals of ``metric`` from ``start`` to ``end`` inclusive (flushed usage)."""
    rows = UsageRecord.objects.filter(
        tenant_id=tenant_id, metric=metric, day__gte=start, day__lte=end
    ).values("day")
    agg = Max("quantity") if metric in GAUGES else Sum("quantity")
    return [(r["day"], int(r["q"])) for r in rows.annotate(q=agg).order_by("day")]

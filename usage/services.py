"""Writes of usage: event ingestion, the exactly-once flush, storage measurement, notices."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis
import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import InvalidInput
from core.events import event_record
from subscriptions.models import SubscriptionPeriod
from usage.limits import TenantLimits, period_start_of, tenant_limits
from usage.meter import PENDING_TENANTS, pending_key, period_counter_key, redis_client
from usage.metrics import BUILT_IN, GAUGES, STORAGE_BYTES, THRESHOLDS
from usage.models import QuotaNotice, UsageFlush

log = structlog.get_logger(__name__)

MAX_BATCH = 1000


# --- quota notices ------------------------------------------------------------------------


def quota_thresholds_check(
    *, limits: TenantLimits, metric: str, used: int, previous: int | None = None
) -> None:
    """Emit QuotaWarning (80 %) / QuotaExceeded (100 %) the first time ``used`` reaches them
    in the period. Cheap unless a threshold is crossed right now."""
    quota = limits.quotas.get(metric)
    if quota is None or quota.limit is None or quota.limit <= 0:
        return
    before = used - 1 if previous is None else previous
    for threshold in THRESHOLDS:
        mark = math.ceil(quota.limit * threshold / 100)
        if before < mark <= used:
            quota_notice_record(limits=limits, metric=metric, threshold=threshold, used=used)


@transaction.atomic
def quota_notice_record(*, limits: TenantLimits, metric: str, threshold: int, used: int) -> bool:
    quota = limits.quotas[metric]
    assert quota.limit is not None
    try:
        with transaction.atomic():
            QuotaNotice.objects.create(
                tenant_id=limits.tenant_id,
                metric=metric,
                period_start=limits.period_start,
                threshold=threshold,
                used=used,
                limit=quota.limit,
            )
    except IntegrityError:
        return False  # already sent this period
    event_record(
        type="QuotaWarning" if threshold < 100 else "QuotaExceeded",
        tenant_id=limits.tenant_id,
        payload={
            "tenant_id": limits.tenant_id,
            "metric": metric,
            "threshold": threshold,
            "used": used,
            "limit": quota.limit,
            "period_start": limits.period_start.isoformat(),
            "hard_limit": quota.is_hard,
        },
    )
    return True


# --- ingestion ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


MAX_QUANTITY = 2**53  # per event; bucket sums stay far below PostgreSQL's bigint


def _period_start_for(
    limits: TenantLimits, earlier: list[tuple[datetime, datetime]], ts: datetime
) -> datetime | None:
    if limits.period_start <= ts:
        return limits.period_start
    return next((start for start, end in earlier if start <= ts < end), None)


def _validate(
    tenant_id: int, limits: TenantLimits, events: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    known = {m for m in limits.quotas if m not in BUILT_IN}
    earliest = limits.period_start - timedelta(hours=settings.USAGE_LATE_GRACE_HOURS)
    latest = now + timedelta(seconds=settings.USAGE_MAX_FUTURE_SECONDS)
    errors: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    # The periods a late event (within the grace) may belong to, read once for the batch.
    earlier = list(
        SubscriptionPeriod.objects.filter(
            subscription__tenant_id=tenant_id, end__gt=earliest, start__lt=limits.period_start
        ).values_list("start", "end")
    )
    for index, event in enumerate(events):
        problems: list[dict[str, str]] = []
        if not isinstance(event, dict):
            errors[str(index)] = {
                "id": None,
                "problems": [{"field": "", "code": "invalid", "message": "An event is an object."}],
            }
            continue
        event_id = event.get("id")
        if not isinstance(event_id, str) or not 1 <= len(event_id) <= 100:
            problems.append(
                {"field": "id", "code": "invalid", "message": "A string of 1 to 100 characters."}
            )
        elif event_id in seen:
            problems.append(
                {
                    "field": "id",
                    "code": "duplicate_in_batch",
                    "message": "The id appears twice in this batch.",
                }
            )
        metric = event.get("metric")
        if not isinstance(metric, str) or metric not in known:
            problems.append(
                {
                    "field": "metric",
                    "code": "unknown_metric",
                    "message": f"'{metric}' is not a metric of the plan; known: {sorted(known)}.",
                }
            )
        quantity = event.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            problems.append(
                {"field": "quantity", "code": "not_an_integer", "message": "An integer."}
            )
        elif quantity < 0 or quantity > MAX_QUANTITY:
            problems.append(
                {"field": "quantity", "code": "out_of_range", "message": "Between 0 and 2^53."}
            )
        ts: datetime | None = None
        raw_ts = event.get("timestamp")
        try:
            ts = datetime.fromisoformat(raw_ts) if isinstance(raw_ts, str) else None
        except ValueError:
            ts = None
        if ts is None or ts.tzinfo is None:
            problems.append(
                {
                    "field": "timestamp",
                    "code": "invalid_timestamp",
                    "message": "An ISO 8601 time with a UTC offset.",
                }
            )
            ts = None
        elif ts > latest:
            problems.append(
                {
                    "field": "timestamp",
                    "code": "timestamp_in_future",
                    "message": f"After {latest.isoformat()}.",
                }
            )
        elif ts < earliest:
            problems.append(
                {
                    "field": "timestamp",
                    "code": "timestamp_too_old",
                    "message": f"Before the current period's grace ({earliest.isoformat()}).",
                }
            )
        properties = event.get("properties", {})
        if not isinstance(properties, dict):
            problems.append({"field": "properties", "code": "invalid", "message": "An object."})
        period_start = (
            _period_start_for(limits, earlier, ts) if ts is not None and not problems else None
        )
        if ts is not None and not problems and period_start is None:
            problems.append(
                {
                    "field": "timestamp",
                    "code": "timestamp_too_old",
                    "message": "In no period of the subscription.",
                }
            )
        if problems:
            errors[str(index)] = {
                "id": event_id if isinstance(event_id, str) else None,
                "problems": problems,
            }
            continue
        assert ts is not None and period_start is not None and isinstance(event_id, str)
        seen.add(event_id)
        rows.append(
            {
                "id": event_id,
                "metric": metric,
                "quantity": quantity,
                "ts": ts.astimezone(UTC),
                "period_start": period_start,
                "properties": properties,
            }
        )
    if errors:
        raise InvalidInput(
            f"{len(errors)} of {len(events)} events are not valid; nothing of this batch was counted.",
            code="invalid_events",
            details={"events": errors},
        )
    return rows


# One statement per batch: the events as one jsonb parameter (cheaper to send than six
# arrays), inserted in id order (two batches with the same ids then lock rows in the same
# order), and what was new summed per (metric, day, period) in SQL, so only a handful of rows
# come back whatever the batch size.
_INSERT_EVENTS = """
WITH input AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb)
        AS e(event_id text, metric text, quantity bigint, ts timestamptz, period_start timestamptz,
             properties jsonb)
), inserted AS (
    INSERT INTO usage_usageevent
        (tenant_id, event_id, metric, quantity, timestamp, period_start, properties, received_at)
    SELECT %s, event_id, metric, quantity, ts, period_start, COALESCE(properties, '{}'::jsonb), %s
    FROM input ORDER BY event_id
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING metric, quantity, timestamp, period_start
)
SELECT metric, SUM(quantity)::bigint, (timestamp AT TIME ZONE 'UTC')::date, period_start, COUNT(*)
FROM inserted GROUP BY metric, (timestamp AT TIME ZONE 'UTC')::date, period_start
"""

_UPSERT_RECORDS = """
INSERT INTO usage_usagerecord (tenant_id, metric, day, period_start, quantity, updated_at)
SELECT %s, r.metric, r.day, r.period_start, r.quantity, %s
FROM unnest(%s::text[], %s::date[], %s::timestamptz[], %s::bigint[]) AS r(metric, day, period_start, quantity)
ON CONFLICT (tenant_id, metric, day, period_start) DO UPDATE
SET quantity = CASE WHEN usage_usagerecord.metric = ANY(%s::text[])
                    THEN GREATEST(usage_usagerecord.quantity, EXCLUDED.quantity)
                    ELSE usage_usagerecord.quantity + EXCLUDED.quantity END,
    updated_at = EXCLUDED.updated_at
"""


def _upsert_records(
    cursor: Any, tenant_id: int, buckets: dict[tuple[str, date, datetime], int], now: datetime
) -> None:
    if not buckets:
        return
    keys = sorted(buckets)  # a fixed order: concurrent upserts lock rows in the same order
    cursor.execute(
        _UPSERT_RECORDS,
        [
            tenant_id,
            now,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [buckets[k] for k in keys],
            sorted(GAUGES),
        ],
    )


def usage_events_ingest(
    *, tenant_id: int, events: list[dict[str, Any]], now: datetime | None = None
) -> IngestResult:
    """Validate a batch as a whole, then store it with one set-based insert; each event id
    counts once per tenant forever. Returns only after the batch is committed (durable)."""
    import json

    now = now or timezone.now()
    if not isinstance(events, list) or not events:
        raise InvalidInput("Send 1 to 1,000 events.", code="invalid_batch")
    if len(events) > MAX_BATCH:
        raise InvalidInput(
            f"At most {MAX_BATCH} events per request.",
            code="batch_too_large",
            details={"max": MAX_BATCH, "got": len(events)},
        )
    limits = tenant_limits(tenant_id=tenant_id)
    if limits is None:
        raise InvalidInput("The tenant has no current subscription.", code="subscription_inactive")
    rows = _validate(tenant_id, limits, events, now)

    # Fast duplicate check in Redis in front of the unique constraint (which decides).
    seen_key = f"usage:seen:{tenant_id}"
    client = None
    try:
        client = redis_client()
        flags = client.smismember(seen_key, [r["id"] for r in rows])
        known = {r["id"] for r, flag in zip(rows, flags, strict=True) if flag}
    except redis.RedisError:
        known = set()
    # A fixed order (by id): two batches with the same ids in different orders then take
    # their row locks in the same order and cannot deadlock.
    fresh = sorted((r for r in rows if r["id"] not in known), key=lambda r: r["id"])

    # (metric, quantity, day, period start) sums of what was new, and how many events
    inserted: list[tuple[str, int, date, datetime]] = []
    accepted = 0
    if fresh:
        payload = json.dumps(
            [
                {
                    "event_id": r["id"],
                    "metric": r["metric"],
                    "quantity": r["quantity"],
                    "ts": r["ts"].isoformat(),
                    "period_start": r["period_start"].isoformat(),
                    "properties": r["properties"],
                }
                for r in fresh
            ]
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_INSERT_EVENTS, [payload, tenant_id, now])
            for metric, quantity, day, period_start, count in cursor.fetchall():
                inserted.append((metric, int(quantity), day, period_start))
                accepted += int(count)
            buckets = {(metric, day, period_start): q for metric, q, day, period_start in inserted}
            _upsert_records(cursor, tenant_id, buckets, now)
            totals = _period_totals_after(cursor, tenant_id, limits, {m for m, _, _, _ in inserted})
            transaction.on_commit(
                lambda: _after_ingest(client, seen_key, fresh, limits, totals, inserted),
                robust=True,
            )
    return IngestResult(accepted=accepted, duplicates=len(rows) - accepted)


def _period_totals_after(
    cursor: Any, tenant_id: int, limits: TenantLimits, metrics: set[str]
) -> dict[str, int]:
    if not metrics:
        return {}
    cursor.execute(
        "SELECT metric, SUM(quantity) FROM usage_usagerecord WHERE tenant_id = %s AND period_start = %s "
        "AND metric = ANY(%s) GROUP BY metric",
        [tenant_id, limits.period_start, sorted(metrics)],
    )
    return {metric: int(total) for metric, total in cursor.fetchall()}


def _after_ingest(
    client: Any,
    seen_key: str,
    fresh: list[dict[str, Any]],
    limits: TenantLimits,
    totals: dict[str, int],
    inserted: list[tuple[str, int, date, datetime]],
) -> None:
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            pipe.sadd(seen_key, *[r["id"] for r in fresh])
            pipe.expire(seen_key, settings.USAGE_SEEN_TTL)
            pipe.execute()
        except redis.RedisError:
            log.warning("usage_seen_cache_unavailable")
    added: dict[str, int] = defaultdict(int)
    for metric, quantity, _, period_start in inserted:
        if period_start == limits.period_start:
            added[metric] += quantity
    for metric, total in totals.items():
        quota_thresholds_check(
            limits=limits, metric=metric, used=total, previous=total - added.get(metric, 0)
        )


# --- aggregation: Redis counters -> UsageRecord, exactly once ------------------------------

# Move a tenant's pending hash to a flush key and list it, atomically.
_CLAIM_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[2])
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[2])
return 1
"""

FLUSH_LIST = "usage:flushes"


def flush_key(flush_id: str) -> str:
    return f"usage:flush:{flush_id}"


def _claim(client: redis.Redis, tenant_id: int) -> str | None:
    flush_id = f"{tenant_id}-{uuid.uuid4().hex}"
    claimed = client.eval(
        _CLAIM_LUA,
        4,
        pending_key(tenant_id),
        flush_key(flush_id),
        PENDING_TENANTS,
        FLUSH_LIST,
        flush_id,
        str(tenant_id),
    )
    return flush_id if int(claimed) else None


def flush_apply(*, flush_id: str, client: redis.Redis) -> bool:
    """Apply one claimed flush to PostgreSQL (at most once, by its id), then drop it."""
    tenant_id = int(flush_id.split("-", 1)[0])
    raw = client.hgetall(flush_key(flush_id))
    buckets: dict[tuple[str, date, datetime], int] = defaultdict(int)
    for field_name, value in raw.items():
        metric, day, period = (
            field_name.decode() if isinstance(field_name, bytes) else field_name
        ).split("|")
        buckets[(metric, date.fromisoformat(day), period_start_of(int(period)))] += int(value)
    applied = False
    with transaction.atomic():
        try:
            with transaction.atomic():
                UsageFlush.objects.create(
                    flush_id=flush_id, applied_at=timezone.now(), buckets=len(buckets)
                )
            applied = True
        except IntegrityError:
            applied = False  # committed before, the clean-up did not happen: only clean up now
        if applied:
            with connection.cursor() as cursor:
                _upsert_records(cursor, tenant_id, buckets, timezone.now())
    flush_cleanup(flush_id=flush_id, client=client)
    return applied


def flush_cleanup(*, flush_id: str, client: redis.Redis) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.delete(flush_key(flush_id))
    pipe.lrem(FLUSH_LIST, 0, flush_id)
    pipe.execute()


def usage_flush(*, client: redis.Redis | None = None) -> dict[str, int]:
    """Move every tenant's pending counters into UsageRecord rows exactly once.

    1. Claim: atomically rename each pending hash to a flush key named by a new flush id and
       list that id (Lua), so new counts go to a fresh hash meanwhile.
    2. Apply: in one transaction insert the flush id (unique) and add the counts to
       UsageRecord; commit.
    3. Clean up: delete the flush key and unlist it.

    A crash between 1 and 2 leaves the flush listed and it is applied by the next run; a crash
    between 2 and 3 leaves it listed too, and the next run finds its id applied and only
    cleans up. Nothing is lost and nothing counts twice.
    """
    client = client or redis_client()
    from usage.meter import replay_local

    replay_local(client)
    for member in client.smembers(PENDING_TENANTS):
        _claim(client, int(member))
    done = {"applied": 0, "skipped": 0}
    for raw_id in client.lrange(FLUSH_LIST, 0, -1):
        flush_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        try:
            done["applied" if flush_apply(flush_id=flush_id, client=client) else "skipped"] += 1
        except Exception:
            log.exception("usage_flush_failed", flush_id=flush_id)
    return done


# --- storage ------------------------------------------------------------------------------


def usage_storage_measure(*, tenant_id: int, schema_name: str, now: datetime | None = None) -> int:
    """Measure the tenant schema's size and keep the day's maximum as the storage gauge."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
            [schema_name],
        )
        size = int(cursor.fetchone()[0])
    limits = tenant_limits(tenant_id=tenant_id)
    if limits is None:
        return size
    with transaction.atomic(), connection.cursor() as cursor:
        _upsert_records(
            cursor,
            tenant_id,
            {(STORAGE_BYTES, now.astimezone(UTC).date(), limits.period_start): size},
            now,
        )
    try:
        client = redis_client()
        key = period_counter_key(tenant_id, STORAGE_BYTES, limits.period_key)
        client.set(key, max(size, int(client.get(key) or 0)), ex=settings.USAGE_COUNTER_TTL)
    except redis.RedisError:
        log.warning("usage_storage_gauge_cache_unavailable", tenant_id=tenant_id)
    quota_thresholds_check(limits=limits, metric=STORAGE_BYTES, used=size, previous=0)
    return size

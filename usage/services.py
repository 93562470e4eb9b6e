"""Writes of usage: event ingestion, the exactly-once flush, storage measurement, notices."""

from __future__ import annotations

import contextlib
import math
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn, Self

import msgspec
import psycopg
import redis
import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.backends.utils import CursorWrapper
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

# A valid event as stored: (event id, metric, quantity, timestamp, period start, properties).
EventRow = tuple[str, str, int, datetime, datetime, dict[str, Any]]

_MISSING = object()
_ENCODER = msgspec.json.Encoder()
_TEXT_MESSAGE = "Text without NUL characters or unpaired surrogates (PostgreSQL stores neither)."


def _text_ok(text: str) -> bool:
    if text.isascii():
        return "\x00" not in text
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


class _Periods:
    """The subscription period a timestamp counts into: the current one or, for a late event
    within the grace, an earlier one (read once per batch, and only if a batch has one)."""

    def __init__(self, tenant_id: int, limits: TenantLimits, earliest: datetime) -> None:
        self.tenant_id = tenant_id
        self.current = limits.period_start
        self.earliest = earliest
        self._earlier: list[tuple[datetime, datetime]] | None = None

    def start_for(self, ts: datetime) -> datetime | None:
        if self.current <= ts:
            return self.current
        if self._earlier is None:
            self._earlier = list(
                SubscriptionPeriod.objects.filter(
                    subscription__tenant_id=self.tenant_id,
                    end__gt=self.earliest,
                    start__lt=self.current,
                ).values_list("start", "end")
            )
        return next((start for start, end in self._earlier if start <= ts < end), None)


def _valid_rows(
    events: list[Any],
    known: frozenset[str],
    earliest: datetime,
    latest: datetime,
    periods: _Periods,
) -> list[EventRow] | None:
    """The rows of a batch whose events are all valid, in one tight pass; None as soon as one
    is not (or is of an unusual type), and then ``_validate_each`` says what is wrong."""
    rows: list[EventRow] = []
    seen: set[str] = set()
    parse = datetime.fromisoformat
    for event in events:
        if type(event) is not dict:
            return None
        event_id = event.get("id")
        metric = event.get("metric")
        quantity = event.get("quantity")
        raw_ts = event.get("timestamp")
        properties = event.get("properties", _MISSING)
        if properties is _MISSING:
            properties = {}
        if not (
            type(event_id) is str
            and 0 < len(event_id) <= 100
            and event_id not in seen
            and _text_ok(event_id)
            and type(metric) is str
            and metric in known
            and type(quantity) is int
            and 0 <= quantity <= MAX_QUANTITY
            and type(raw_ts) is str
            and type(properties) is dict
        ):
            return None
        try:
            ts = parse(raw_ts)
        except ValueError:
            return None
        if ts.tzinfo is None or not earliest <= ts <= latest:
            return None
        period_start = periods.start_for(ts)
        if period_start is None:
            return None
        seen.add(event_id)
        rows.append((event_id, metric, quantity, ts.astimezone(UTC), period_start, properties))
    return rows


def _validate_each(
    events: list[Any],
    known: frozenset[str],
    earliest: datetime,
    latest: datetime,
    periods: _Periods,
) -> list[EventRow]:
    """Every problem of every event, named by its index; raises if there is any."""
    errors: dict[str, Any] = {}
    rows: list[EventRow] = []
    seen: set[str] = set()
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
        elif not _text_ok(event_id):
            problems.append({"field": "id", "code": "invalid", "message": _TEXT_MESSAGE})
            event_id = None  # not shown back: it could not be written in the response either
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
            shown = metric if not isinstance(metric, str) or _text_ok(metric) else ascii(metric)
            problems.append(
                {
                    "field": "metric",
                    "code": "unknown_metric",
                    "message": f"'{shown}' is not a metric of the plan; known: {sorted(known)}.",
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
        period_start = periods.start_for(ts) if ts is not None and not problems else None
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
        assert isinstance(metric, str) and isinstance(quantity, int)
        seen.add(event_id)
        rows.append((event_id, metric, quantity, ts.astimezone(UTC), period_start, properties))
    if errors:
        _raise_invalid(errors, len(events))
    return rows


def _raise_invalid(errors: dict[str, Any], count: int) -> NoReturn:
    raise InvalidInput(
        f"{len(errors)} of {count} events are not valid; nothing of this batch was counted.",
        code="invalid_events",
        details={"events": errors},
    )


def _validate(
    tenant_id: int, limits: TenantLimits, events: list[Any], now: datetime
) -> list[EventRow]:
    known = frozenset(m for m in limits.quotas if m not in BUILT_IN)
    earliest = limits.period_start - timedelta(hours=settings.USAGE_LATE_GRACE_HOURS)
    latest = now + timedelta(seconds=settings.USAGE_MAX_FUTURE_SECONDS)
    periods = _Periods(tenant_id, limits, earliest)
    rows = _valid_rows(events, known, earliest, latest, periods)
    if rows is None:
        rows = _validate_each(events, known, earliest, latest, periods)
    return rows


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _events_payload(rows: list[EventRow]) -> str:
    """The rows of a whole batch as one JSON array of arrays (one statement parameter).
    PostgreSQL's jsonb stores neither NUL characters nor unpaired surrogates: events with
    them in their properties are named in a 400, not a 500 from the database."""
    try:
        payload = _ENCODER.encode(rows)
    except (TypeError, ValueError):
        payload = None
    if payload is not None and b"\\u0000" not in payload:
        return payload.decode()
    errors: dict[str, Any] = {}
    for index, row in enumerate(rows):
        try:
            _ENCODER.encode(row)
        except (TypeError, ValueError):
            bad = True
        else:
            bad = _has_nul(row)
        if bad:  # ids were checked with the rest; the text is in the properties
            errors[str(index)] = {
                "id": row[0],
                "problems": [{"field": "properties", "code": "invalid", "message": _TEXT_MESSAGE}],
            }
    if errors:
        _raise_invalid(errors, len(rows))
    assert payload is not None  # "\\u0000" written out in a string, not a NUL
    return payload.decode()


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


# One statement per batch. The events come as one jsonb parameter (an array of arrays: cheap
# to encode and to take apart), are inserted in id order (two batches with the same ids then
# lock rows in the same order), and what was new is summed per (metric, day, period) and
# added to the daily totals in the same statement; only those few sums come back.
_INGEST = """
WITH input AS (
    SELECT e->>0 AS event_id, e->>1 AS metric, (e->>2)::bigint AS quantity,
           (e->>3)::timestamptz AS ts, (e->>4)::timestamptz AS period_start, e->5 AS properties
    FROM jsonb_array_elements(%(events)s::jsonb) AS e
), inserted AS (
    INSERT INTO usage_usageevent
        (tenant_id, event_id, metric, quantity, timestamp, period_start, properties, received_at)
    SELECT %(tenant)s::bigint, event_id, metric, quantity, ts, period_start, properties,
           %(now)s::timestamptz
    FROM input ORDER BY event_id
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING metric, quantity, timestamp, period_start
), buckets AS (
    SELECT metric, (timestamp AT TIME ZONE 'UTC')::date AS day, period_start,
           SUM(quantity)::bigint AS quantity, COUNT(*) AS events
    FROM inserted GROUP BY 1, 2, 3
), recorded AS (
    INSERT INTO usage_usagerecord (tenant_id, metric, day, period_start, quantity, updated_at)
    SELECT %(tenant)s::bigint, metric, day, period_start, quantity, %(now)s::timestamptz
    FROM buckets ORDER BY metric, day, period_start
    ON CONFLICT (tenant_id, metric, day, period_start) DO UPDATE
    SET quantity = usage_usagerecord.quantity + EXCLUDED.quantity,
        updated_at = EXCLUDED.updated_at
)
SELECT metric, quantity, day, period_start, events FROM buckets
"""


# The seen set's check and update, each one round trip with the ids as one JSON argument:
# redis-py packs 1,000 separate arguments one by one (~0.4 ms each way per batch). The members
# are the ids' UTF-8 bytes, as with SMISMEMBER / SADD from redis-py. (Lua's unpack takes up
# to ~8,000 values; a batch has at most MAX_BATCH.)
_SEEN_CHECK_LUA = "return redis.call('SMISMEMBER', KEYS[1], unpack(cjson.decode(ARGV[1])))"
_SEEN_ADD_LUA = """
redis.call('SADD', KEYS[1], unpack(cjson.decode(ARGV[1])))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class _PreparedCursor(psycopg.Cursor[Any]):
    """Sends parameters apart from the statement (Django's default cursor quotes them into
    it: for a 100 kB parameter that is work on both sides) and prepares the statement once
    per connection."""

    def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        return super().execute(query, params, prepare=True, binary=binary)


@contextlib.contextmanager
def _prepared_cursor() -> Iterator[CursorWrapper]:
    with connection.cursor():  # connects, and sets the search path of the current schema
        pass
    raw: Any = _PreparedCursor(connection.connection)  # what Django's wrappers wrap
    try:
        # Django's wrappers, so the statement is logged and errors are Django's as usual.
        yield (
            connection.make_debug_cursor(raw)
            if connection.queries_logged
            else connection.make_cursor(raw)
        )
    finally:
        raw.close()


@transaction.atomic
def usage_events_ingest(
    *, tenant_id: int, events: list[Any], now: datetime | None = None
) -> IngestResult:
    """Validate a batch as a whole, then store it with one set-based insert; each event id
    counts once per tenant forever. Returns only after the batch is committed (durable)."""
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
    payload = _events_payload(rows)

    # Fast duplicate check in Redis in front of the unique constraint (which decides).
    seen_key = f"usage:seen:{tenant_id}"
    client = None
    try:
        client = redis_client()
        ids = _ENCODER.encode([row[0] for row in rows])
        flags = client.register_script(_SEEN_CHECK_LUA)(keys=[seen_key], args=[ids])
        fresh = [row for row, flag in zip(rows, flags, strict=True) if not flag]
    except redis.RedisError:
        fresh = rows
    if not fresh:
        return IngestResult(accepted=0, duplicates=len(rows))

    if len(fresh) < len(rows):
        payload = _ENCODER.encode(fresh).decode()
    with _prepared_cursor() as cursor:
        cursor.execute(_INGEST, {"events": payload, "tenant": tenant_id, "now": now})
        # (metric, quantity, day, period start) sums of what was new, and how many events
        inserted: list[tuple[str, int, date, datetime]] = []
        accepted = 0
        for metric, quantity, day, period_start, count in cursor.fetchall():
            inserted.append((metric, int(quantity), day, period_start))
            accepted += int(count)
    # Totals for the quota notices, read after this batch's upsert: only metrics with a limit.
    watched = {m for m, _, _, _ in inserted if (limits.quotas[m].limit or 0) > 0}
    totals = _period_totals_after(tenant_id, limits, watched)
    fresh_ids = [row[0] for row in fresh]
    transaction.on_commit(
        lambda: _after_ingest(client, seen_key, fresh_ids, limits, totals, inserted),
        robust=True,
    )
    return IngestResult(accepted=accepted, duplicates=len(rows) - accepted)


def _period_totals_after(tenant_id: int, limits: TenantLimits, metrics: set[str]) -> dict[str, int]:
    if not metrics:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT metric, SUM(quantity) FROM usage_usagerecord WHERE tenant_id = %s "
            "AND period_start = %s AND metric = ANY(%s) GROUP BY metric",
            [tenant_id, limits.period_start, sorted(metrics)],
        )
        return {metric: int(total) for metric, total in cursor.fetchall()}


def _after_ingest(
    client: Any,
    seen_key: str,
    fresh_ids: list[str],
    limits: TenantLimits,
    totals: dict[str, int],
    inserted: list[tuple[str, int, date, datetime]],
) -> None:
    if client is not None:
        try:
            client.register_script(_SEEN_ADD_LUA)(
                keys=[seen_key], args=[_ENCODER.encode(fresh_ids), settings.USAGE_SEEN_TTL]
            )
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


FLUSH_RECORD_DAYS = 7


@transaction.atomic
def usage_flushes_prune(
    *, older_than: timedelta | None = None, client: redis.Redis | None = None
) -> int:
    """Delete the ``UsageFlush`` rows no flush can need again; returns how many.

    A row only has to exist while its flush can still be found in Redis (listed, or its
    key left behind): then the next run must see that it was applied. Rows older than
    ``older_than`` (a week) whose flush is gone from Redis are deleted; the others stay.
    When Redis cannot be read nothing is deleted.
    """
    cutoff = timezone.now() - (older_than or timedelta(days=FLUSH_RECORD_DAYS))
    old = list(
        UsageFlush.objects.select_for_update(skip_locked=True)
        .filter(applied_at__lt=cutoff)
        .values_list("pk", "flush_id")[:10_000]
    )
    if not old:
        return 0
    client = client or redis_client()
    try:
        listed = {
            raw.decode() if isinstance(raw, bytes) else str(raw)
            for raw in client.lrange(FLUSH_LIST, 0, -1)
        }
        pipe = client.pipeline(transaction=False)
        for _pk, flush_id in old:
            pipe.exists(flush_key(flush_id))
        left_behind = pipe.execute()
    except redis.RedisError:
        log.warning("usage_flush_prune_redis_unavailable")
        return 0
    gone = [
        pk
        for (pk, flush_id), exists in zip(old, left_behind, strict=True)
        if not exists and flush_id not in listed
    ]
    UsageFlush.objects.filter(pk__in=gone).delete()
    return len(gone)


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

"""The metering hot path: rate limit, quota check and counting in one Redis round trip.

One Lua script per request does, atomically:

1. the per-minute rate limit, as GCRA (a token bucket of ``rate`` tokens refilled over a
   minute, one key holding the theoretical arrival time);
2. the quota of the period (a counter per tenant, metric and period), refusing when a hard
   limit would be passed;
3. the counting: the period counters (``api_calls`` +1 and the bandwidth of earlier
   responses), and the same amounts into the tenant's *pending* hash, which the aggregation
   task moves into PostgreSQL exactly once (see ``usage.services.usage_flush``).

Bandwidth is known only after the response, so each process keeps the bytes of a tenant's
responses and adds them on that tenant's next call (and flushes all of them every few
seconds), which keeps it to one round trip per request.

When Redis is down the default is to fail open: requests are allowed and counted in the
process, and the counts are replayed into Redis once it answers again. With
``USAGE_FAIL_MODE=closed`` requests are refused with 503 instead. Never a 500.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from django.conf import settings
from django.db.models import Sum

from core.conf import HotSettings
from core.redis import HotScript, redis_client
from core.redis import reset_client as reset_client
from core.snapshots import generation_key
from usage.limits import TenantLimits, period_key_of, period_start_of
from usage.metrics import API_CALLS, BANDWIDTH_BYTES
from usage.models import UsageRecord

log = structlog.get_logger(__name__)

PENDING_TENANTS = "usage:pending:tenants"
_conf = HotSettings(
    "USAGE_CREDIT_MAX",
    "USAGE_CREDIT_SECONDS",
    "USAGE_CREDIT_HEADROOM",
    "USAGE_COUNTER_TTL",
    "USAGE_FAIL_MODE",
)


def pending_key(tenant_id: int) -> str:
    return f"usage:pending:{tenant_id}"


def period_counter_key(tenant_id: int, metric: str, period_key: int) -> str:
    return f"usage:period:{tenant_id}:{metric}:{period_key}"


def rate_key(tenant_id: int) -> str:
    return f"usage:rate:{tenant_id}"


def bucket_field(metric: str, day: str, period_key: int) -> str:
    return f"{metric}|{day}|{period_key}"


# KEYS: 1 rate, 2 calls counter, 3 bandwidth counter, 4 pending hash, 5 pending tenant set,
#       6 the tenant's generation token (core.snapshots)
# ARGV: 1 now_ms, 2 rate (0 = none), 3 calls quota (-1 = unlimited), 4 hard (1/0), 5 calls
#       admitted earlier on credit (counted whatever happens), 6 bandwidth to add, 7 calls
#       field, 8 bandwidth field, 9 counter ttl s, 10 tenant id, 11 bandwidth quota
#       (-1 = unlimited), 12 bandwidth hard (1/0), 13 the token the request's snapshot was
#       made under ('' = its data is fresh), 14 credit wanted, 15 unused credit given back,
#       16 credit headroom: calls that must be left under a hard quota for credit,
#       17 '1': a hard quota applies, so a missing calls counter must be seeded first
# (from PostgreSQL, by the caller: after a Redis restart or at a period's first request)
# Returns {allowed, code, retry_ms, remaining, reset_ms, used, bandwidth, credit}.
METER_LUA = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local quota = tonumber(ARGV[3])
local hard = tonumber(ARGV[4])
local earlier = tonumber(ARGV[5])
local bytes = tonumber(ARGV[6])
local ttl = tonumber(ARGV[9])
local bw_quota = tonumber(ARGV[11])
local bw_hard = tonumber(ARGV[12])
local want = tonumber(ARGV[14])
local unused = tonumber(ARGV[15])

-- A hard quota is never checked against a counter Redis lost: the caller seeds it first.
if ARGV[17] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return {0, 'unseeded', 0, -1, 0, -1, 0, 0}
end

-- Count into a period counter and the pending hash the flush moves to PostgreSQL.
local function count(counter, field, amount)
  local total = redis.call('INCRBY', counter, amount)
  redis.call('EXPIRE', counter, ttl)
  redis.call('HINCRBY', KEYS[4], field, amount)
  redis.call('SADD', KEYS[5], ARGV[10])
  return total
end

-- What was admitted or sent before this request is counted whatever happens to it.
local bw = tonumber(redis.call('GET', KEYS[3]) or '0')
if bytes > 0 then bw = count(KEYS[3], ARGV[8], bytes) end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if earlier > 0 then used = count(KEYS[2], ARGV[7], earlier) end

local interval = 0
local tat = now
if rate > 0 then
  interval = 60000 / rate
  tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  -- Credit granted earlier and not used goes back into the bucket.
  if unused > 0 then tat = tat - unused * interval end
  if tat < now then tat = now end
end

-- A request served from a stale snapshot (a key revoked, a plan changed, ...) is not
-- counted: the router serves it again from fresh data.
-- (A missing token is stale too: the router's fresh load creates one.)
if ARGV[13] ~= '' and redis.call('GET', KEYS[6]) ~= ARGV[13] then
  if rate > 0 and unused > 0 then
    redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1)
  end
  return {0, 'stale', 0, -1, 0, -1, bw, 0}
end

local new_tat = 0
local remaining = -1
if rate > 0 then
  new_tat = tat + interval
  local allow_at = new_tat - 60000
  if now < allow_at then
    redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1)
    return {0, 'rate_limited', math.ceil(allow_at - now), 0, math.ceil(tat - now), -1, bw, 0}
  end
  remaining = math.floor((now - allow_at) / interval)
end

if quota >= 0 and hard == 1 and used + 1 > quota then
  return {0, 'quota_exceeded', 0, remaining, 0, used, bw, 0}
end
if bw_quota >= 0 and bw_hard == 1 and bw >= bw_quota then
  return {0, 'quota_exceeded', 0, remaining, 0, used, bw, 0}
end

-- Credit: requests the process may admit on its own. Under a hard quota at most half of
-- what is left of it, and only while more than the headroom is left (and a tenth of a hard
-- bandwidth quota), so fewer than headroom / credit processes cannot pass it together;
-- taken from the rate bucket now, at most half of what is left in it, so the rate limit
-- holds exactly.
local credit = 0
if want > 0 and hard == 1 and quota - used < tonumber(ARGV[16]) then want = 0 end
if want > 0 and bw_hard == 1 and (bw_quota - bw) * 10 < bw_quota then want = 0 end
if want > 0 then
  credit = want
  if hard == 1 and quota >= 0 then credit = math.min(credit, math.floor((quota - used - 1) / 2)) end
  if rate > 0 then
    credit = math.min(credit, math.floor(remaining / 2))
    new_tat = new_tat + credit * interval
    remaining = remaining - credit
  end
end

if rate > 0 then
  redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now))
end
used = count(KEYS[2], ARGV[7], 1)
local reset = 0
if new_tat > 0 then reset = math.ceil(new_tat - now) end
return {1, 'ok', 0, remaining, reset, used, bw, credit}
"""


@dataclass(slots=True)
class MeterResult:
    allowed: bool
    code: str  # ok | rate_limited | quota_exceeded | unavailable | stale
    retry_after_s: int = 0
    rate_limit: int | None = None
    rate_remaining: int | None = None
    rate_reset_s: int = 0
    used: int | None = None  # api_calls used in the period, after this request
    bandwidth_used: int | None = None  # bandwidth counted in the period so far
    bandwidth_added: int = 0  # bytes of earlier responses counted with this request
    degraded: bool = False  # Redis was down; the request was counted in the process
    sent: bool = False  # stale after a lost reply: the script may have counted it already
    calls_added: int = 1  # api_calls counted by this call (this request and earlier credit)
    bucket: tuple[int, str] | None = None  # (period key, day) the request was counted in


_script = HotScript(METER_LUA)


class _LocalBuffer:
    """Per-process counts waiting for Redis: response bytes not yet sent, and whole requests
    counted while Redis was down. Keyed by (tenant, metric, day, period)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bandwidth: dict[tuple[int, int, str], int] = defaultdict(int)  # (tenant, period, day)
        self.calls: dict[tuple[int, int, str], int] = defaultdict(int)  # admitted on credit
        self.offline: dict[tuple[int, str, str, int], int] = defaultdict(int)
        self.last_flush = time.monotonic()

    def take_bandwidth(self, tenant_id: int, period_key: int, day: str) -> int:
        with self.lock:
            return self.bandwidth.pop((tenant_id, period_key, day), 0)

    def take_calls(self, tenant_id: int, period_key: int, day: str) -> int:
        with self.lock:
            return self.calls.pop((tenant_id, period_key, day), 0)

    def add_call(self, key: tuple[int, int, str]) -> None:
        """One request admitted on credit; ``key`` is (tenant, period key, day)."""
        with self.lock:
            self.calls[key] += 1

    def add_bandwidth(self, tenant_id: int, period_key: int, day: str, nbytes: int) -> None:
        with self.lock:
            self.bandwidth[(tenant_id, period_key, day)] += nbytes

    def add_offline(
        self, tenant_id: int, metric: str, day: str, period_key: int, amount: int
    ) -> None:
        with self.lock:
            self.offline[(tenant_id, metric, day, period_key)] += amount

    def drain(self) -> dict[tuple[int, str, str, int], int]:
        with self.lock:
            out = dict(self.offline)
            for (tenant_id, period_key, day), nbytes in self.bandwidth.items():
                key = (tenant_id, BANDWIDTH_BYTES, day, period_key)
                out[key] = out.get(key, 0) + nbytes
            for (tenant_id, period_key, day), calls in self.calls.items():
                key = (tenant_id, API_CALLS, day, period_key)
                out[key] = out.get(key, 0) + calls
            self.offline.clear()
            self.bandwidth.clear()
            self.calls.clear()
            self.last_flush = time.monotonic()
            return out

    def restore(self, items: dict[tuple[int, str, str, int], int]) -> None:
        with self.lock:
            for key, amount in items.items():
                self.offline[key] += amount


buffer = _LocalBuffer()
LOCAL_FLUSH_SECONDS = 5.0


def replay_local(client: redis.Redis | None = None) -> int:
    """Send the process's buffered counts to Redis in one pipeline; returns buckets sent."""
    items = buffer.drain()
    if not items:
        return 0
    try:
        pipe = (client or redis_client()).pipeline(transaction=True)
        for (tenant_id, metric, day, period_key), amount in items.items():
            pipe.incrby(period_counter_key(tenant_id, metric, period_key), amount)
            pipe.expire(
                period_counter_key(tenant_id, metric, period_key), settings.USAGE_COUNTER_TTL
            )
            pipe.hincrby(pending_key(tenant_id), bucket_field(metric, day, period_key), amount)
            pipe.sadd(PENDING_TENANTS, tenant_id)
        pipe.execute()
    except redis.TimeoutError:
        # It may have been applied: sending it again could count it twice. Drop it (logged).
        log.warning("metering_replay_outcome_unknown", buckets=len(items))
        return 0
    except redis.RedisError:
        buffer.restore(items)
        return 0
    return len(items)


atexit.register(replay_local)

CREDIT_FLUSH_SECONDS = 1.0
_flusher_pid = 0


def _flush_credit_counts() -> None:
    while True:
        time.sleep(CREDIT_FLUSH_SECONDS)
        if buffer.calls:
            replay_local_safely()


def _flusher_ensure() -> None:
    """Start (once per process, after any fork) the thread that sends counts of requests
    admitted on credit to Redis within about a second, when no round trip takes them."""
    global _flusher_pid
    if _flusher_pid != os.getpid():
        _flusher_pid = os.getpid()
        threading.Thread(
            target=_flush_credit_counts, name="usage-credit-flush", daemon=True
        ).start()


_day_memo: tuple[int, str] = (-1, "")


def _day(now: datetime) -> str:
    global _day_memo
    number = int(now.timestamp()) // 86400
    if _day_memo[0] != number:
        _day_memo = (number, now.astimezone(UTC).strftime("%Y-%m-%d"))
    return _day_memo[1]


@dataclass
class _Credit:
    """Requests a process may admit for a tenant without a round trip (see the module doc)."""

    token: str
    bucket: tuple[int, str]  # (period key, day) its requests are counted in
    calls_key: tuple[int, int, str]  # (tenant, period key, day) in the local buffer
    left: int
    expires: float  # a POSIX time
    rate_limit: int | None
    rate_remaining: int | None  # left in the bucket at the grant, besides the credit
    rate_reset_s: int


def counters_seed(*, limits: TenantLimits, period: int) -> None:
    """Set the period's api_calls and bandwidth counters, where Redis has none, to what is
    known of them: the flushed totals in PostgreSQL plus what is still pending in Redis.

    A lower bound (counts lost with Redis, or in a flush being applied, are not there), so
    a hard quota goes on from the durable total after a Redis restart instead of from zero.
    """
    start = period_start_of(period)
    totals = {
        row["metric"]: int(row["total"])
        for row in UsageRecord.objects.filter(
            tenant_id=limits.tenant_id, period_start=start, metric__in=(API_CALLS, BANDWIDTH_BYTES)
        )
        .values("metric")
        .annotate(total=Sum("quantity"))
    }
    client = redis_client()
    for raw_field, amount in client.hgetall(pending_key(limits.tenant_id)).items():
        field = raw_field.decode() if isinstance(raw_field, bytes) else str(raw_field)
        metric, _day_part, field_period = field.split("|")
        if int(field_period) == period and metric in (API_CALLS, BANDWIDTH_BYTES):
            totals[metric] = totals.get(metric, 0) + int(amount)
    pipe = client.pipeline(transaction=True)
    for metric in (API_CALLS, BANDWIDTH_BYTES):
        pipe.set(
            period_counter_key(limits.tenant_id, metric, period),
            totals.get(metric, 0),
            nx=True,
            ex=settings.USAGE_COUNTER_TTL,
        )
    pipe.execute()


def _meter_call(
    limits: TenantLimits, period: int, day: str, keys: list[str], args: list[Any]
) -> Any:
    raw = _script(keys, args)
    if raw[1] == b"unseeded":
        counters_seed(limits=limits, period=period)
        raw = _script(keys, args)
    return raw


_credits: dict[int, _Credit] = {}
_degraded: dict[int, tuple[int, int]] = {}  # tenant -> (minute, requests admitted in it)
_last_call: dict[int, float] = {}  # tenant -> POSIX time of its last round trip from here


def credits_clear() -> None:
    _credits.clear()
    _last_call.clear()
    _degraded.clear()


def _limits_args(limits: TenantLimits, now: datetime) -> tuple[int, int, int, int, int]:
    """(period, calls quota, calls hard, bandwidth quota, bandwidth hard) for the script."""
    if now < limits.period_end:
        return limits.meter_args
    # The period ended and the renewal has not run yet: count into the next period, which
    # starts where this one ended, and enforce no quota meanwhile.
    return period_key_of(limits.period_end), -1, 0, -1, 0


def _degraded_admit(tenant_id: int, rate: int, stamp: float) -> MeterResult:
    """Failing open: the request is admitted. Its rate-limit headers count what this process
    admitted for the tenant in the current minute (Redis, which knows the rest, is down),
    so ``X-RateLimit-Remaining`` is an upper bound there, and ``-Reset`` the minute's end."""
    if not rate:
        return MeterResult(allowed=True, code="ok", degraded=True)
    minute = int(stamp // 60)
    start, admitted = _degraded.get(tenant_id, (minute, 0))
    admitted = admitted + 1 if start == minute else 1
    _degraded[tenant_id] = (minute, admitted)
    return MeterResult(
        allowed=True,
        code="ok",
        rate_limit=rate,
        rate_remaining=max(rate - admitted, 0),
        rate_reset_s=max((minute + 1) * 60 - math.ceil(stamp), 1),
        degraded=True,
    )


def meter_request(
    *, limits: TenantLimits, now: datetime | None = None, snapshot_token: str | None = None
) -> MeterResult:
    """Check the rate limit and the api_calls quota and count one request.

    ``snapshot_token`` is the generation token of the process-local snapshot that ``limits``
    (and the request's route and key) came from, or None when they were loaded fresh. When
    the tenant's token in Redis differs, nothing is counted and the code is ``stale``; so it
    is when Redis cannot be reached, since the snapshot cannot be checked then either.

    A request the process holds credit for (same snapshot token, period and day, credit not
    expired) is admitted and counted here without a round trip; its count goes to Redis with
    the tenant's next round trip, or with the periodic local flush.
    """
    tenant_id = limits.tenant_id
    stamp = now.timestamp() if now is not None else time.time()
    unused = 0
    credit = _credits.pop(tenant_id, None)  # atomic: one thread at a time holds a credit
    if credit is not None:
        if (
            credit.left > 0
            and credit.token == snapshot_token
            and snapshot_token is not None
            and stamp < credit.expires  # also before the day's and the period's end
        ):
            credit.left -= 1
            _credits[tenant_id] = credit
            buffer.add_call(credit.calls_key)
            return MeterResult(
                True,
                "ok",
                0,
                credit.rate_limit,
                None if credit.rate_remaining is None else credit.rate_remaining + credit.left,
                credit.rate_reset_s,
                calls_added=0,  # sent with a later round trip
                bucket=credit.bucket,
            )
        unused = credit.left
    now = now or datetime.fromtimestamp(stamp, UTC)
    day = _day(now)
    period, quota, hard, bw_quota, bw_hard = _limits_args(limits, now)
    rate = limits.rate_limit_per_minute or 0
    hot = stamp - _last_call.get(tenant_id, 0.0) < _conf.USAGE_CREDIT_SECONDS
    want = _conf.USAGE_CREDIT_MAX if hot and snapshot_token is not None else 0
    _last_call[tenant_id] = stamp
    earlier = buffer.take_calls(tenant_id, period, day)
    pending_bytes = buffer.take_bandwidth(tenant_id, period, day)
    try:
        if buffer.offline and buffer.last_flush + LOCAL_FLUSH_SECONDS < time.monotonic():
            replay_local()
        raw = _meter_call(
            limits,
            period,
            day,
            [
                rate_key(tenant_id),
                period_counter_key(tenant_id, API_CALLS, period),
                period_counter_key(tenant_id, BANDWIDTH_BYTES, period),
                pending_key(tenant_id),
                PENDING_TENANTS,
                generation_key(tenant_id),
            ],
            [
                int(stamp * 1000),
                rate,
                quota,
                hard,
                earlier,
                pending_bytes,
                bucket_field(API_CALLS, day, period),
                bucket_field(BANDWIDTH_BYTES, day, period),
                _conf.USAGE_COUNTER_TTL,
                tenant_id,
                bw_quota,
                bw_hard,
                snapshot_token or "",
                want,
                unused,
                _conf.USAGE_CREDIT_HEADROOM,
                "1" if hard or bw_hard else "0",
            ],
        )
    except redis.TimeoutError as exc:
        # The script may have run on the server: counting it here too could count it twice,
        # so the outcome is left unknown (at most this request, and what it carried, goes
        # uncounted).
        log.warning("metering_timeout", error=str(exc))
        if snapshot_token is not None:
            return MeterResult(allowed=False, code="stale", degraded=True, sent=True)
        if _conf.USAGE_FAIL_MODE == "closed":
            return MeterResult(allowed=False, code="unavailable", retry_after_s=5, degraded=True)
        return _degraded_admit(tenant_id, rate, stamp)
    except (redis.RedisError, OSError) as exc:
        if pending_bytes:
            buffer.add_offline(tenant_id, BANDWIDTH_BYTES, day, period, pending_bytes)
        if earlier:
            buffer.add_offline(tenant_id, API_CALLS, day, period, earlier)
        if snapshot_token is not None:
            return MeterResult(allowed=False, code="stale", degraded=True)
        if _conf.USAGE_FAIL_MODE == "closed":
            log.warning("metering_unavailable", mode="closed", error=str(exc))
            return MeterResult(allowed=False, code="unavailable", retry_after_s=5, degraded=True)
        log.warning("metering_unavailable", mode="open", error=str(exc))
        buffer.add_offline(tenant_id, API_CALLS, day, period, 1)
        return _degraded_admit(tenant_id, rate, stamp)

    code = raw[1].decode() if isinstance(raw[1], bytes) else str(raw[1])
    allowed, retry_ms, remaining, reset_ms, used, bandwidth, granted = (
        int(raw[0]),
        int(raw[2]),
        int(raw[3]),
        int(raw[4]),
        int(raw[5]),
        int(raw[6]),
        int(raw[7]),
    )
    if code == "stale":
        return MeterResult(
            allowed=False, code=code, bandwidth_added=pending_bytes, calls_added=earlier
        )
    retry_after = math.ceil(retry_ms / 1000) if code == "rate_limited" else 0
    if code == "quota_exceeded":
        retry_after = max(1, math.ceil((limits.period_end - now).total_seconds()))
    result = MeterResult(
        allowed=bool(allowed),
        code=code,
        retry_after_s=max(retry_after, 1 if not allowed else 0),
        rate_limit=rate or None,
        rate_remaining=remaining if remaining >= 0 else None,
        rate_reset_s=math.ceil(reset_ms / 1000),
        used=used if used >= 0 else None,
        bandwidth_used=bandwidth,
        bandwidth_added=pending_bytes,
        calls_added=earlier + (1 if allowed else 0),
        bucket=(period, day),
    )
    if granted > 0 and snapshot_token is not None:
        _flusher_ensure()
        _credits[tenant_id] = _Credit(
            token=snapshot_token,
            bucket=(period, day),
            calls_key=(tenant_id, period, day),
            left=granted,
            # Never across midnight (the day's bucket) or the period's end (its counter).
            expires=min(
                stamp + _conf.USAGE_CREDIT_SECONDS,
                (int(stamp) // 86400 + 1) * 86400,
                limits.period_end.timestamp(),
            ),
            rate_limit=result.rate_limit,
            rate_remaining=result.rate_remaining,
            rate_reset_s=result.rate_reset_s,
        )
    return result


def meter_bandwidth(
    *,
    limits: TenantLimits,
    nbytes: int,
    now: datetime | None = None,
    bucket: tuple[int, str] | None = None,
) -> None:
    """Remember a response's size; it is sent with the tenant's next metered call.

    ``bucket`` is the (period key, day) of the request's own count (``MeterResult.bucket``).
    """
    if nbytes <= 0:
        return
    if bucket is None:
        now = now or datetime.now(UTC)
        period = limits.period_key if now < limits.period_end else period_key_of(limits.period_end)
        bucket = (period, _day(now))
    buffer.add_bandwidth(limits.tenant_id, bucket[0], bucket[1], nbytes)
    if buffer.last_flush + LOCAL_FLUSH_SECONDS < time.monotonic():
        replay_local_safely()


def replay_local_safely() -> None:
    try:
        replay_local()
    except Exception:  # never break a response over metering
        log.exception("metering_replay_failed")

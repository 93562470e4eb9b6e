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
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from django.conf import settings

from usage.limits import TenantLimits, period_key_of
from usage.metrics import API_CALLS, BANDWIDTH_BYTES

log = structlog.get_logger(__name__)

PENDING_TENANTS = "usage:pending:tenants"


def pending_key(tenant_id: int) -> str:
    return f"usage:pending:{tenant_id}"


def period_counter_key(tenant_id: int, metric: str, period_key: int) -> str:
    return f"usage:period:{tenant_id}:{metric}:{period_key}"


def rate_key(tenant_id: int) -> str:
    return f"usage:rate:{tenant_id}"


def bucket_field(metric: str, day: str, period_key: int) -> str:
    return f"{metric}|{day}|{period_key}"


# KEYS: 1 rate, 2 calls counter, 3 bandwidth counter, 4 pending hash, 5 pending tenant set
# ARGV: 1 now_ms, 2 rate (0 = none), 3 calls quota (-1 = unlimited), 4 hard (1/0), 5 calls to
#       add, 6 bandwidth to add, 7 calls field, 8 bandwidth field, 9 counter ttl s,
#       10 tenant id, 11 bandwidth quota (-1 = unlimited), 12 bandwidth hard (1/0)
METER_LUA = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local quota = tonumber(ARGV[3])
local hard = tonumber(ARGV[4])
local calls = tonumber(ARGV[5])
local bytes = tonumber(ARGV[6])
local ttl = tonumber(ARGV[9])
local bw_quota = tonumber(ARGV[11])
local bw_hard = tonumber(ARGV[12])

-- Bytes of earlier responses are counted whatever happens to this request.
local bw = tonumber(redis.call('GET', KEYS[3]) or '0')
if bytes > 0 then
  bw = redis.call('INCRBY', KEYS[3], bytes)
  redis.call('EXPIRE', KEYS[3], ttl)
  redis.call('HINCRBY', KEYS[4], ARGV[8], bytes)
  redis.call('SADD', KEYS[5], ARGV[10])
end

local new_tat = 0
local remaining = -1
if rate > 0 and calls > 0 then
  local interval = 60000 / rate
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  new_tat = tat + interval
  local allow_at = new_tat - 60000
  if now < allow_at then
    return {0, 'rate_limited', math.ceil(allow_at - now), 0, math.ceil(tat - now), -1, bw}
  end
  remaining = math.floor((now - allow_at) / interval)
end

local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if calls > 0 and quota >= 0 and hard == 1 and used + calls > quota then
  return {0, 'quota_exceeded', 0, remaining, 0, used, bw}
end
if calls > 0 and bw_quota >= 0 and bw_hard == 1 and bw >= bw_quota then
  return {0, 'quota_exceeded', 0, remaining, 0, used, bw}
end

if rate > 0 and calls > 0 then
  redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now))
end
if calls > 0 then
  used = redis.call('INCRBY', KEYS[2], calls)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('HINCRBY', KEYS[4], ARGV[7], calls)
  redis.call('SADD', KEYS[5], ARGV[10])
end
local reset = 0
if new_tat > 0 then reset = math.ceil(new_tat - now) end
return {1, 'ok', 0, remaining, reset, used, bw}
"""


@dataclass(frozen=True)
class MeterResult:
    allowed: bool
    code: str  # ok | rate_limited | quota_exceeded | unavailable
    retry_after_s: int = 0
    rate_limit: int | None = None
    rate_remaining: int | None = None
    rate_reset_s: int = 0
    used: int | None = None  # api_calls used in the period, after this request
    bandwidth_used: int | None = None  # bandwidth counted in the period so far
    bandwidth_added: int = 0  # bytes of earlier responses counted with this request
    degraded: bool = False  # Redis was down; the request was counted in the process


_client_lock = threading.Lock()
_client: redis.Redis | None = None
_script: Any = None


def redis_client() -> redis.Redis:
    global _client, _script
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(
                settings.REDIS_URL,
                socket_timeout=settings.USAGE_REDIS_TIMEOUT,
                socket_connect_timeout=settings.USAGE_REDIS_TIMEOUT,
            )
            _script = _client.register_script(METER_LUA)
        return _client


def _meter_script() -> Any:
    redis_client()
    return _script


def reset_client() -> None:
    """Forget the connection (tests point REDIS_URL elsewhere)."""
    global _client, _script
    with _client_lock:
        _client, _script = None, None


class _LocalBuffer:
    """Per-process counts waiting for Redis: response bytes not yet sent, and whole requests
    counted while Redis was down. Keyed by (tenant, metric, day, period)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bandwidth: dict[tuple[int, int, str], int] = defaultdict(int)  # (tenant, period, day)
        self.offline: dict[tuple[int, str, str, int], int] = defaultdict(int)
        self.last_flush = time.monotonic()

    def take_bandwidth(self, tenant_id: int, period_key: int, day: str) -> int:
        with self.lock:
            return self.bandwidth.pop((tenant_id, period_key, day), 0)

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
            self.offline.clear()
            self.bandwidth.clear()
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


def _day(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%d")


def meter_request(*, limits: TenantLimits, now: datetime | None = None) -> MeterResult:
    """Check the rate limit and the api_calls quota and count one request."""
    now = now or datetime.now(UTC)
    day = _day(now)
    period = limits.period_key
    if now >= limits.period_end:
        # The period ended and the renewal has not run yet: count into the next period,
        # which starts where this one ended, and enforce no quota meanwhile.
        period, quota, hard = period_key_of(limits.period_end), -1, 0
    else:
        calls_limit = limits.quotas.get(API_CALLS)
        quota = -1 if calls_limit is None or calls_limit.limit is None else calls_limit.limit
        hard = 1 if calls_limit is not None and calls_limit.is_hard else 0
    bw_limit = limits.quotas.get(BANDWIDTH_BYTES)
    in_period = now < limits.period_end
    has_bw_limit = bw_limit is not None and bw_limit.limit is not None and in_period
    bw_quota = (
        bw_limit.limit
        if has_bw_limit and bw_limit is not None and bw_limit.limit is not None
        else -1
    )
    bw_hard = 1 if has_bw_limit and bw_limit is not None and bw_limit.is_hard else 0
    rate = limits.rate_limit_per_minute or 0
    tenant_id = limits.tenant_id
    pending_bytes = buffer.take_bandwidth(tenant_id, period, day)
    try:
        if buffer.offline and buffer.last_flush + LOCAL_FLUSH_SECONDS < time.monotonic():
            replay_local()
        raw = _meter_script()(
            keys=[
                rate_key(tenant_id),
                period_counter_key(tenant_id, API_CALLS, period),
                period_counter_key(tenant_id, BANDWIDTH_BYTES, period),
                pending_key(tenant_id),
                PENDING_TENANTS,
            ],
            args=[
                int(now.timestamp() * 1000),
                rate,
                quota,
                hard,
                1,
                pending_bytes,
                bucket_field(API_CALLS, day, period),
                bucket_field(BANDWIDTH_BYTES, day, period),
                settings.USAGE_COUNTER_TTL,
                tenant_id,
                bw_quota,
                bw_hard,
            ],
        )
    except redis.TimeoutError as exc:
        # The script may have run on the server: counting it here too could count it twice,
        # so the outcome is left unknown (at most this request goes uncounted).
        log.warning("metering_timeout", error=str(exc))
        if settings.USAGE_FAIL_MODE == "closed":
            return MeterResult(allowed=False, code="unavailable", retry_after_s=5, degraded=True)
        return MeterResult(allowed=True, code="ok", rate_limit=rate or None, degraded=True)
    except (redis.RedisError, OSError) as exc:
        if pending_bytes:
            buffer.add_offline(tenant_id, BANDWIDTH_BYTES, day, period, pending_bytes)
        if settings.USAGE_FAIL_MODE == "closed":
            log.warning("metering_unavailable", mode="closed", error=str(exc))
            return MeterResult(allowed=False, code="unavailable", retry_after_s=5, degraded=True)
        log.warning("metering_unavailable", mode="open", error=str(exc))
        buffer.add_offline(tenant_id, API_CALLS, day, period, 1)
        return MeterResult(allowed=True, code="ok", rate_limit=rate or None, degraded=True)

    allowed, code, retry_ms, remaining, reset_ms, used, bandwidth = (
        int(raw[0]),
        raw[1].decode() if isinstance(raw[1], bytes) else str(raw[1]),
        int(raw[2]),
        int(raw[3]),
        int(raw[4]),
        int(raw[5]),
        int(raw[6]),
    )
    retry_after = math.ceil(retry_ms / 1000) if code == "rate_limited" else 0
    if code == "quota_exceeded":
        retry_after = max(1, math.ceil((limits.period_end - now).total_seconds()))
    return MeterResult(
        allowed=bool(allowed),
        code=code,
        retry_after_s=max(retry_after, 1 if not allowed else 0),
        rate_limit=rate or None,
        rate_remaining=remaining if remaining >= 0 else None,
        rate_reset_s=math.ceil(reset_ms / 1000),
        used=used if used >= 0 else None,
        bandwidth_used=bandwidth,
        bandwidth_added=pending_bytes,
    )


def meter_bandwidth(*, limits: TenantLimits, nbytes: int, now: datetime | None = None) -> None:
    """Remember a response's size; it is sent with the tenant's next metered call."""
    if nbytes <= 0:
        return
    now = now or datetime.now(UTC)
    period = limits.period_key if now < limits.period_end else period_key_of(limits.period_end)
    buffer.add_bandwidth(limits.tenant_id, period, _day(now), nbytes)
    if buffer.last_flush + LOCAL_FLUSH_SECONDS < time.monotonic():
        replay_local_safely()


def replay_local_safely() -> None:
    try:
        replay_local()
    except Exception:  # never break a response over metering
        log.exception("metering_replay_failed")

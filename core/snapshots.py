"""Process-local snapshots of each tenant's hot-path data, checked by a generation token.

A warm tenant API request needs its route (host -> tenant), its API key's verification, the
plan's limits and the subscription's access. Read from the Redis cache, those were four
round trips per request before the metering one. Instead each process keeps one snapshot
per tenant, tagged with the tenant's *generation token*: a random value in Redis
(``tenantry:gen:<tenant id>``) that every invalidation of that tenant's cached data replaces.

- The metering Lua script (the request's one round trip) compares the snapshot's token with
  the one in Redis and counts nothing when they differ; the middleware then answers
  :class:`StaleSnapshot`, and the router drops the snapshot and serves the request again from
  fresh data. A tenant request that is not metered checks the token with one ``GET``. So a
  revoked key, a suspended tenant or a changed plan is seen from the first request after the
  change, in every process, while a warm metered request makes one round trip in all.
- A snapshot's token is read *before* any value is put in it, so no value is tagged with a
  token newer than the data it was loaded from. Invalidations delete their Redis cache
  entries first and replace the token after (:func:`generation_bump`).
- A missing token is created with a new random value, never a fixed one: after a Redis
  restart or flush no snapshot made before it can match.
- When Redis cannot be read, nothing is kept: values are loaded for the request only.
- Snapshots live at most ``SNAPSHOT_MAX_AGE`` seconds; at most ``SNAPSHOT_MAX_TENANTS`` are
  kept per process (the oldest go first).

Each request works on one *current* snapshot (a context variable set by the router), so
every value a request uses is checked with that snapshot's token.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from django.http import HttpResponse
from redis.exceptions import RedisError

from core.redis import redis_client

log = structlog.get_logger(__name__)

SNAPSHOT_MAX_AGE = 60.0
SNAPSHOT_MAX_TENANTS = 10_000
SNAPSHOT_MAX_VALUES = 1_000  # e.g. API keys of one tenant
T = TypeVar("T")
_MISSING: Any = object()

# KEYS: 1 token; ARGV: 1 a new token, stored when there is none.
GENERATION_LUA = """
local token = redis.call('GET', KEYS[1])
if not token then
  token = ARGV[1]
  redis.call('SET', KEYS[1], token)
end
return token
"""


def generation_key(tenant_id: int) -> str:
    return f"tenantry:gen:{tenant_id}"


def new_token() -> str:
    return secrets.token_hex(8)


@dataclass(eq=False)
class Snapshot:
    tenant_id: int
    token: str | None  # None: Redis could not be read; the snapshot is not kept
    born: float = field(default_factory=time.monotonic)
    values: dict[str, Any] = field(default_factory=dict)
    fresh: bool = True  # made during the current request: nothing in it needs checking


class StaleSnapshot(HttpResponse):
    """Returned by the metering middleware to the router: serve this request again, fresh."""


_lock = threading.Lock()
_store: OrderedDict[int, Snapshot] = OrderedDict()
_index: dict[str, int] = {}  # "host:<host>" / "slug:<slug>" -> tenant id
_current: ContextVar[Snapshot | None] = ContextVar("tenantry_snapshot", default=None)


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def token_read(tenant_id: int) -> str | None:
    try:
        client = redis_client()
        return _decode(client.eval(GENERATION_LUA, 1, generation_key(tenant_id), new_token()))
    except (RedisError, OSError) as exc:
        log.warning("generation_unavailable", op="read", error=str(exc))
        return None


def _alive(snapshot: Snapshot) -> bool:
    return time.monotonic() - snapshot.born < SNAPSHOT_MAX_AGE


def snapshot_find(index_key: str) -> Any:
    """``route:<index_key>`` from the live snapshot holding it, which becomes the current
    one; None when there is none."""
    tenant_id = _index.get(index_key)
    if tenant_id is None:
        return None
    snapshot = _store.get(tenant_id)
    if snapshot is None or not _alive(snapshot):
        return None
    value = snapshot.values.get("route:" + index_key)
    if value is not None:
        _current.set(snapshot)
    return value


def snapshot_enter(snapshot: Snapshot) -> Snapshot:
    _current.set(snapshot)
    return snapshot


def snapshot_open(tenant_id: int, *, reuse: bool = True) -> Snapshot:
    """Make the tenant's snapshot the current one: the kept one, or a new one (token read)."""
    if reuse:
        kept = _store.get(tenant_id)
        if kept is not None and _alive(kept):
            return snapshot_enter(kept)
    snapshot = Snapshot(tenant_id=tenant_id, token=token_read(tenant_id))
    if snapshot.token is not None:
        with _lock:
            _store[tenant_id] = snapshot
            _store.move_to_end(tenant_id)
            while len(_store) > SNAPSHOT_MAX_TENANTS:
                _store.popitem(last=False)
    return snapshot_enter(snapshot)


def snapshot_close() -> None:
    snapshot = _current.get()
    if snapshot is not None:
        snapshot.fresh = False
    _current.set(None)


def snapshot_current() -> Snapshot | None:
    return _current.get()


def snapshot_index(index_key: str, snapshot: Snapshot, value: Any) -> None:
    """Keep a route (host or slug -> tenant) in the snapshot it belongs to."""
    if snapshot.token is None or _store.get(snapshot.tenant_id) is not snapshot:
        return
    snapshot.values["route:" + index_key] = value
    _index[index_key] = snapshot.tenant_id


def snapshot_value(
    tenant_id: int,
    name: str,
    load: Callable[..., T],
    *args: Any,
    keep: Callable[[T], bool] | None = None,
) -> T:
    """``name`` from the current snapshot when it is the tenant's, else ``load(*args)``.

    A loaded value is kept in the snapshot (when ``keep`` allows) for later requests.
    """
    snapshot = _current.get()
    if snapshot is None or snapshot.tenant_id != tenant_id:
        return load(*args)
    values = snapshot.values
    value = values.get(name, _MISSING)
    if value is not _MISSING:
        return value
    value = load(*args)
    if (keep is None or keep(value)) and len(values) < SNAPSHOT_MAX_VALUES:
        values[name] = value
    return value


def snapshot_drop(tenant_id: int) -> None:
    with _lock:
        _store.pop(tenant_id, None)
        for key in [k for k, v in _index.items() if v == tenant_id]:
            _index.pop(key, None)


def snapshots_clear() -> None:
    with _lock:
        _store.clear()
        _index.clear()
    _current.set(None)


def generation_check(snapshot: Snapshot) -> bool | None:
    """Whether the snapshot's token is still the tenant's (None: Redis could not say)."""
    if snapshot.token is None:
        return None
    try:
        raw = redis_client().get(generation_key(snapshot.tenant_id))
    except (RedisError, OSError) as exc:
        log.warning("generation_unavailable", op="check", error=str(exc))
        return None
    return raw is not None and _decode(raw) == snapshot.token


def generation_bump(tenant_id: int) -> None:
    """Invalidate every process's snapshot of the tenant (call after the cache deletes)."""
    snapshot_drop(tenant_id)
    try:
        redis_client().set(generation_key(tenant_id), new_token())
    except (RedisError, OSError) as exc:
        # Snapshots elsewhere can no longer be checked against Redis either, so none of them
        # is used while it is unreachable (see the router); at worst they live out their age.
        log.warning("generation_unavailable", op="bump", error=str(exc))

"""Cache reads and writes that survive Redis being down.

The hot path reads routes, key verifications and plan limits from Redis. When Redis is
unreachable these return ``None`` (a miss) and the caller falls back to the database, so
the API keeps answering instead of failing with a 500.
"""

from __future__ import annotations

from typing import Any

import structlog
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)


def safe_get(cache: Any, key: str) -> Any:
    try:
        return cache.get(key)
    except (RedisError, OSError) as exc:
        log.warning("cache_unavailable", op="get", error=str(exc))
        return None


def safe_set(cache: Any, key: str, value: Any, timeout: int) -> None:
    try:
        cache.set(key, value, timeout)
    except (RedisError, OSError) as exc:
        log.warning("cache_unavailable", op="set", error=str(exc))


def safe_delete_many(cache: Any, keys: list[str]) -> None:
    try:
        cache.delete_many(keys)
    except (RedisError, OSError) as exc:
        log.warning("cache_unavailable", op="delete", error=str(exc))

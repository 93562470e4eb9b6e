"""Reads from a tenant's own schema."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import QuerySet

from core.cache import safe_get, safe_set
from tenants.workspace.keys import key_hash, key_looks_valid
from tenants.workspace.models import ApiKey
from tenants.workspace.services import API_KEY_CACHE_TTL, api_key_cache_key


@dataclass(frozen=True)
class VerifiedKey:
    id: int
    prefix: str
    name: str


_MISSING = {"id": None}


def api_key_verify(*, raw_key: str) -> VerifiedKey | None:
    """The active key matching ``raw_key`` in the current schema, from the cache when warm."""
    if not key_looks_valid(raw_key):
        return None
    digest = key_hash(raw_key)
    cache_key = api_key_cache_key(digest)
    cached = safe_get(cache, cache_key)
    if cached is None:
        row = (
            ApiKey.objects.filter(key_hash=digest, revoked_at__isnull=True)
            .values("id", "prefix", "name")
            .first()
        )
        cached = row or _MISSING
        safe_set(cache, cache_key, cached, API_KEY_CACHE_TTL if row else 30)
    if cached.get("id") is None:
        return None
    return VerifiedKey(id=cached["id"], prefix=cached["prefix"], name=cached["name"])


def api_key_list() -> QuerySet[ApiKey]:
    return ApiKey.objects.all()

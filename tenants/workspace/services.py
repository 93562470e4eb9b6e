"""Writes to a tenant's own schema: members and API keys. Call with the tenant's schema set."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from core.audit import Actor, audit_record
from core.errors import Conflict, NotFound
from core.events import event_record
from core.snapshots import generation_bump
from tenants.workspace.keys import key_generate
from tenants.workspace.models import ApiKey, Member, MemberRole

API_KEY_CACHE_TTL = 300


def api_key_cache_key(key_hash: str) -> str:
    # The default cache is tenant-aware (django_tenants.cache.make_key), so this key is
    # scoped to the current schema as well.
    return f"apikey:{key_hash}"


@dataclass(frozen=True)
class ApiKeyCreated:
    api_key: ApiKey
    raw_key: str  # shown once


def _current_tenant_id() -> int | None:
    tenant = getattr(connection, "tenant", None)
    return getattr(tenant, "pk", None)


@transaction.atomic
def member_ensure_owner(*, email: str, name: str = "") -> Member:
    member, _ = Member.objects.get_or_create(
        email=email.lower(), defaults={"name": name, "role": MemberRole.OWNER}
    )
    return member


@transaction.atomic
def api_key_create(*, name: str, actor: Actor, created_by: Member | None = None) -> ApiKeyCreated:
    material = key_generate()
    api_key = ApiKey.objects.create(
        name=name, prefix=material.prefix, key_hash=material.key_hash, created_by=created_by
    )
    tenant_id = _current_tenant_id()
    audit_record(
        actor=actor,
        action="api_key.create",
        tenant_id=tenant_id,
        target_type="api_key",
        target_id=api_key.pk,
        data={"name": name, "prefix": api_key.prefix},
    )
    event_record(
        type="ApiKeyCreated",
        tenant_id=tenant_id,
        payload={"api_key_id": api_key.pk, "prefix": api_key.prefix, "name": name},
    )
    return ApiKeyCreated(api_key=api_key, raw_key=material.raw)


@transaction.atomic
def api_key_store(*, name: str, prefix: str, key_hash: str, created_by: Member | None) -> ApiKey:
    """Store a key whose hash was made earlier (the signup key, made before the schema)."""
    return ApiKey.objects.create(name=name, prefix=prefix, key_hash=key_hash, created_by=created_by)


@transaction.atomic
def api_key_revoke(*, api_key_id: int, actor: Actor) -> ApiKey:
    api_key = ApiKey.objects.select_for_update().filter(pk=api_key_id).first()
    if api_key is None:
        raise NotFound("No such API key.", code="api_key_not_found")
    if api_key.revoked_at is not None:
        raise Conflict("This API key is already revoked.", code="api_key_revoked")
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    tenant_id = _current_tenant_id()
    audit_record(
        actor=actor,
        action="api_key.revoke",
        tenant_id=tenant_id,
        target_type="api_key",
        target_id=api_key.pk,
        data={"prefix": api_key.prefix},
    )
    event_record(
        type="ApiKeyRevoked",
        tenant_id=tenant_id,
        payload={"api_key_id": api_key.pk, "prefix": api_key.prefix},
    )
    # Drop the cached verification now: on commit could leave a window where a revoked key
    # still authenticates from the cache; deleting twice is harmless.
    cache_key = api_key_cache_key(api_key.key_hash)
    cache.delete(cache_key)

    def forget() -> None:
        cache.delete(cache_key)
        if tenant_id is not None:
            generation_bump(tenant_id)  # every process's snapshot of this tenant

    transaction.on_commit(forget)
    return api_key

"""Host -> tenant resolution, cached in Redis and invalidated by tenant events.

The router keeps resolved routes in the process's tenant snapshot (``core.snapshots``), so a
warm request resolves its tenant with no query and no Redis read of its own; this module is
the slower path behind it: one Redis cache read, the database on a miss. Entries are dropped
when a tenant's status or domains change (see ``tenants.subscribers``), which also replaces
the tenant's generation token, and expire after ``ROUTE_TTL`` seconds in any case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from django.core.cache import caches

from core.cache import safe_delete_many, safe_get, safe_set
from core.snapshots import generation_bump
from tenants.models import Domain, Tenant

ROUTE_TTL = 300
MISS_TTL = 30
_MISS: dict[str, Any] = {"missing": True}


@dataclass(frozen=True)
class RoutedTenant:
    id: int
    slug: str
    schema_name: str
    name: str
    status: str

    def as_model(self) -> Tenant:
        """An unsaved-looking Tenant instance for ``connection.set_tenant``; no query."""
        tenant = Tenant(
            id=self.id,
            slug=self.slug,
            schema_name=self.schema_name,
            name=self.name,
            status=self.status,
        )
        tenant._state.adding = False
        tenant._state.db = "default"
        return tenant


def _cache() -> Any:
    return caches["shared"]


def host_key(host: str) -> str:
    return f"route:host:{host.lower()}"


def slug_key(slug: str) -> str:
    return f"route:slug:{slug.lower()}"


def _routed(tenant: Tenant) -> RoutedTenant:
    return RoutedTenant(
        id=tenant.pk,
        slug=tenant.slug,
        schema_name=tenant.schema_name,
        name=tenant.name,
        status=tenant.status,
    )


def _cached(key: str, load: Any) -> RoutedTenant | None:
    cache = _cache()
    value = safe_get(cache, key)
    if value is None:
        tenant = load()
        value = asdict(_routed(tenant)) if tenant is not None else _MISS
        safe_set(cache, key, value, ROUTE_TTL if tenant is not None else MISS_TTL)
    if value.get("missing"):
        return None
    return RoutedTenant(**value)


def route_for_host(host: str) -> RoutedTenant | None:
    host = host.lower()

    def load() -> Tenant | None:
        domain = Domain.objects.select_related("tenant").filter(domain=host).first()
        return domain.tenant if domain is not None else None

    return _cached(host_key(host), load)


def route_for_slug(slug: str) -> RoutedTenant | None:
    slug = slug.lower()
    return _cached(slug_key(slug), lambda: Tenant.objects.filter(slug=slug).first())


def routes_invalidate(*, slugs: Iterable[str] = (), hosts: Iterable[str] = ()) -> None:
    keys = [slug_key(s) for s in slugs] + [host_key(h) for h in hosts]
    if keys:
        safe_delete_many(_cache(), keys)


def routes_invalidate_tenant(tenant_id: int, *, extra_hosts: Iterable[str] = ()) -> None:
    """Drop every cached route to a tenant: its slug, its domains and any former hosts."""
    tenant = Tenant.objects.filter(pk=tenant_id).only("slug").first()
    hosts = set(Domain.objects.filter(tenant_id=tenant_id).values_list("domain", flat=True))
    hosts.update(extra_hosts)
    routes_invalidate(slugs=[tenant.slug] if tenant else [], hosts=hosts)
    generation_bump(tenant_id)  # and every process's snapshot of the tenant

"""Reads of tenants (public schema)."""

from __future__ import annotations

from django.db.models import QuerySet

from core.errors import NotFound
from tenants.models import Tenant


def tenant_get(*, tenant_id: int) -> Tenant:
    tenant = Tenant.objects.prefetch_related("domains").filter(pk=tenant_id).first()
    if tenant is None:
        raise NotFound("No such tenant.", code="tenant_not_found")
    return tenant


def tenant_list(*, status: str | None = None) -> QuerySet[Tenant]:
    tenants = Tenant.objects.exclude(schema_name="public")
    return tenants.filter(status=status) if status else tenants

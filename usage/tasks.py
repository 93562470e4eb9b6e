from __future__ import annotations

from celery import shared_task

from tenants.models import Tenant, TenantStatus
from usage.services import usage_flush, usage_flushes_prune, usage_storage_measure


@shared_task(name="usage.flush")
def usage_flush_task() -> dict[str, int]:
    return usage_flush()


@shared_task(name="usage.prune_flushes")
def usage_prune_flushes_task() -> int:
    return usage_flushes_prune()


@shared_task(name="usage.measure_storage")
def usage_measure_storage_task() -> int:
    """Queue one measurement per active tenant (daily)."""
    ids = list(Tenant.objects.filter(status=TenantStatus.ACTIVE).values_list("pk", flat=True))
    for tenant_id in ids:
        usage_measure_tenant_storage_task.delay(tenant_id)
    return len(ids)


@shared_task(name="usage.measure_tenant_storage")
def usage_measure_tenant_storage_task(tenant_id: int) -> int:
    tenant = Tenant.objects.get(pk=tenant_id)
    return usage_storage_measure(tenant_id=tenant.pk, schema_name=tenant.schema_name)

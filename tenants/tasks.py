"""Thin Celery tasks: take ids, call a service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from tenants.services import ProvisioningError, tenant_provision

PROVISION_MAX_RETRIES = 5


@shared_task(name="tenants.provision", bind=True, max_retries=PROVISION_MAX_RETRIES, acks_late=True)
def tenant_provision_task(self: Any, tenant_id: int) -> str:
    try:
        tenant = tenant_provision(tenant_id=tenant_id)
    except ProvisioningError as exc:
        # The tenant is left ``failed`` with the error (and retryable by staff); the task
        # itself retries with exponential backoff: 5 s, 10 s, 20 s, ... at most 5 min.
        raise self.retry(exc=exc, countdown=min(5 * 2**self.request.retries, 300)) from exc
    return str(tenant.status)

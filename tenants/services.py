"""Every write to tenants: create, provision, suspend, activate, close.

Each service is atomic, writes an audit entry and records a domain event in the outbox (the
event is dispatched when the transaction commits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from core.audit import SYSTEM, Actor, audit_record
from core.errors import Conflict, InvalidInput, NotFound
from core.events import event_record
from tenants.db import use_public
from tenants.models import Domain, Tenant, TenantStatus, schema_name_for
from tenants.workspace.keys import key_generate

log = structlog.get_logger(__name__)


class ProvisioningError(Exception):
    """The tenant's schema could not be made; the tenant is left ``failed`` and retryable."""


@dataclass(frozen=True)
class TenantCreated:
    tenant: Tenant
    domain: Domain
    api_key: str  # shown once


def tenant_primary_host(slug: str) -> str:
    return f"{slug}.{settings.TENANTRY_BASE_DOMAIN}"


def _payload(tenant: Tenant, **extra: Any) -> dict[str, Any]:
    return {"tenant_id": tenant.pk, "slug": tenant.slug, "status": tenant.status, **extra}


def _locked(tenant_id: int) -> Tenant:
    tenant = Tenant.objects.select_for_update().filter(pk=tenant_id).first()
    if tenant is None:
        raise NotFound("No such tenant.", code="tenant_not_found")
    return tenant


def _transition(tenant: Tenant, to: str) -> None:
    if not tenant.can_transition(to):
        raise Conflict(
            f"A tenant that is {tenant.status} cannot become {to}.",
            code="invalid_transition",
            details={"from": tenant.status, "to": to},
        )
    tenant.status = to


@transaction.atomic
def tenant_create(
    *,
    slug: str,
    name: str,
    email: str,
    plan: str = "",
    timezone_name: str = "UTC",
    currency: str = "USD",
    actor: Actor = SYSTEM,
    provision: bool = True,
) -> TenantCreated:
    """Create a tenant in ``provisioning`` and queue its provisioning after commit."""
    slug = slug.strip().lower()
    material = key_generate()
    tenant = Tenant(
        slug=slug,
        schema_name=schema_name_for(slug),
        name=name.strip(),
        contact_email=email.strip().lower(),
        signup_plan=plan,
        timezone=timezone_name,
        currency=currency,
        status=TenantStatus.PROVISIONING,
        pending_key_prefix=material.prefix,
        pending_key_hash=material.key_hash,
    )
    try:
        tenant.full_clean(validate_unique=False)
    except ValidationError as exc:
        raise InvalidInput(
            "The tenant is not valid.", code="validation_error", details=exc.message_dict
        ) from exc
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(f"The slug '{slug}' is taken.", code="slug_taken", details={"slug": slug})
    host = tenant_primary_host(slug)
    try:
        with transaction.atomic():
            tenant.save()
            domain = Domain.objects.create(domain=host, tenant=tenant, is_primary=True)
    except IntegrityError as exc:
        # Lost a race with a concurrent signup for the same slug (or its host).
        raise Conflict(
            f"The slug '{slug}' is taken.", code="slug_taken", details={"slug": slug}
        ) from exc

    audit_record(
        actor=actor,
        action="tenant.create",
        tenant_id=tenant.pk,
        target_type="tenant",
        target_id=tenant.pk,
        data={"slug": slug, "plan": plan, "domain": host},
    )
    event_record(
        type="TenantCreated",
        tenant_id=tenant.pk,
        payload=_payload(
            tenant, name=tenant.name, email=tenant.contact_email, plan=plan, domain=host
        ),
    )
    if provision:
        tenant_id = tenant.pk
        transaction.on_commit(lambda: _enqueue_provisioning(tenant_id))
    return TenantCreated(tenant=tenant, domain=domain, api_key=material.raw)


def _enqueue_provisioning(tenant_id: int) -> None:
    from tenants.tasks import tenant_provision_task

    tenant_provision_task.delay(tenant_id)


def tenant_provision(*, tenant_id: int, actor: Actor = SYSTEM) -> Tenant:
    """Make the tenant's schema by cloning the template, store its first key, activate it.

    All of it is one transaction (PostgreSQL DDL is transactional), so a failure leaves no
    schema behind: the tenant is marked ``failed`` with the error and can be retried.
    Provisioning an already active tenant changes nothing.
    """
    try:
        return _tenant_provision(tenant_id=tenant_id, actor=actor)
    except (NotFound, Conflict):
        raise
    except Exception as exc:
        log.exception("tenant_provisioning_failed", tenant_id=tenant_id)
        tenant_provisioning_fail(tenant_id=tenant_id, error=f"{type(exc).__name__}: {exc}")
        raise ProvisioningError(str(exc)) from exc


@transaction.atomic
def _tenant_provision(*, tenant_id: int, actor: Actor) -> Tenant:
    from tenants.workspace.services import api_key_store, member_ensure_owner

    tenant = _locked(tenant_id)
    if tenant.status == TenantStatus.ACTIVE and tenant.provisioned_at is not None:
        return tenant
    if tenant.status not in (TenantStatus.PROVISIONING, TenantStatus.FAILED):
        raise Conflict(
            f"A tenant that is {tenant.status} cannot be provisioned.", code="invalid_transition"
        )
    template = settings.TENANT_BASE_SCHEMA
    if not schema_exists(template):
        raise ProvisioningError(
            f"The template schema '{template}' does not exist; run `manage.py migrate_schemas`."
        )
    started = timezone.now()
    tenant.provisioning_attempts += 1
    tenant.create_schema(check_if_exists=True, verbosity=0)
    with schema_context(tenant.schema_name):
        owner = member_ensure_owner(email=tenant.contact_email, name=tenant.name)
        if tenant.pending_key_hash:
            api_key_store(
                name="Signup key",
                prefix=tenant.pending_key_prefix,
                key_hash=tenant.pending_key_hash,
                created_by=owner,
            )
    use_public()
    tenant.status = TenantStatus.ACTIVE
    tenant.pending_key_hash = ""
    tenant.pending_key_prefix = ""
    tenant.provisioning_error = ""
    tenant.provisioned_at = timezone.now()
    tenant.save()
    seconds = (tenant.provisioned_at - started).total_seconds()
    audit_record(
        actor=actor,
        action="tenant.provision",
        tenant_id=tenant.pk,
        target_type="tenant",
        target_id=tenant.pk,
        data={"schema": tenant.schema_name, "template": template, "seconds": round(seconds, 3)},
    )
    event_record(
        type="TenantActivated", tenant_id=tenant.pk, payload=_payload(tenant, reason="provisioned")
    )
    log.info("tenant_provisioned", tenant=tenant.slug, seconds=round(seconds, 3))
    return tenant


@transaction.atomic
def tenant_provisioning_fail(*, tenant_id: int, error: str) -> Tenant:
    tenant = _locked(tenant_id)
    if tenant.status != TenantStatus.FAILED:
        _transition(tenant, TenantStatus.FAILED)
    tenant.provisioning_error = error[:4000]
    tenant.save(update_fields=["status", "provisioning_error", "updated_at"])
    audit_record(
        actor=SYSTEM,
        action="tenant.provisioning_fail",
        tenant_id=tenant.pk,
        target_type="tenant",
        target_id=tenant.pk,
        data={"error": tenant.provisioning_error},
    )
    event_record(
        type="TenantProvisioningFailed",
        tenant_id=tenant.pk,
        payload=_payload(tenant, error=error[:500]),
    )
    return tenant


@transaction.atomic
def tenant_provisioning_retry(*, tenant_id: int, actor: Actor, reason: str = "") -> Tenant:
    """Put a failed tenant back into ``provisioning`` and queue the task again."""
    tenant = _locked(tenant_id)
    _transition(tenant, TenantStatus.PROVISIONING)
    tenant.save(update_fields=["status", "updated_at"])
    audit_record(
        actor=actor,
        action="tenant.provisioning_retry",
        tenant_id=tenant.pk,
        target_type="tenant",
        target_id=tenant.pk,
        reason=reason,
    )
    event_record(type="TenantProvisioningRetried", tenant_id=tenant.pk, payload=_payload(tenant))
    transaction.on_commit(lambda: _enqueue_provisioning(tenant.pk))
    return tenant


def _status_change(
    *, tenant_id: int, to: str, actor: Actor, reason: str, action: str, event: str
) -> Tenant:
    tenant = _locked(tenant_id)
    before = tenant.status
    _transition(tenant, to)
    tenant.status_reason = reason
    tenant.save(update_fields=["status", "status_reason", "updated_at"])
    audit_record(
        actor=actor,
        action=action,
        tenant_id=tenant.pk,
        target_type="tenant",
        target_id=tenant.pk,
        reason=reason,
        data={"from": before, "to": to},
    )
    event_record(
        type=event,
        tenant_id=tenant.pk,
        payload=_payload(tenant, reason=reason, previous_status=before),
    )
    return tenant


@transaction.atomic
def tenant_suspend(*, tenant_id: int, actor: Actor, reason: str) -> Tenant:
    return _status_change(
        tenant_id=tenant_id,
        to=TenantStatus.SUSPENDED,
        actor=actor,
        reason=reason,
        action="tenant.suspend",
        event="TenantSuspended",
    )


@transaction.atomic
def tenant_activate(*, tenant_id: int, actor: Actor, reason: str) -> Tenant:
    return _status_change(
        tenant_id=tenant_id,
        to=TenantStatus.ACTIVE,
        actor=actor,
        reason=reason,
        action="tenant.activate",
        event="TenantActivated",
    )


@transaction.atomic
def tenant_close(*, tenant_id: int, actor: Actor, reason: str) -> Tenant:
    """Close a tenant for good. Its schema is kept (data retention); its hosts answer 410."""
    return _status_change(
        tenant_id=tenant_id,
        to=TenantStatus.CLOSED,
        actor=actor,
        reason=reason,
        action="tenant.close",
        event="TenantClosed",
    )


@transaction.atomic
def tenant_domains_changed(*, tenant_id: int, actor: Actor, former_hosts: list[str]) -> None:
    """Record a change of a tenant's domains (from the admin) so routes are invalidated."""
    hosts = sorted(Domain.objects.filter(tenant_id=tenant_id).values_list("domain", flat=True))
    audit_record(
        actor=actor,
        action="tenant.domains_change",
        tenant_id=tenant_id,
        target_type="tenant",
        target_id=tenant_id,
        data={"before": sorted(former_hosts), "after": hosts},
    )
    event_record(
        type="TenantDomainsChanged",
        tenant_id=tenant_id,
        payload={"tenant_id": tenant_id, "hosts": hosts, "former_hosts": sorted(former_hosts)},
    )


@transaction.atomic
def tenant_updated(*, tenant_id: int, actor: Actor, fields: list[str]) -> None:
    """Record a staff edit of a tenant's details (name, email, time zone, config...)."""
    audit_record(
        actor=actor,
        action="tenant.update",
        tenant_id=tenant_id,
        target_type="tenant",
        target_id=tenant_id,
        data={"fields": sorted(fields)},
    )
    event_record(
        type="TenantUpdated",
        tenant_id=tenant_id,
        payload={"tenant_id": tenant_id, "fields": sorted(fields)},
    )

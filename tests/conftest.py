"""Test set-up: the template schema is migrated once per session (by pytest-django's
``migrate``, which here is ``migrate_schemas``), and two tenants, ``alpha`` and ``beta``, are
cloned from it once per session. Tests run in a transaction rolled back at the end, so what
they write to either schema disappears; the session tenants stay.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from config.celery import app as celery_app
from core.snapshots import snapshots_clear
from tenants.db import use_public
from tenants.models import Tenant

DEMO_CATALOG = (
    Path(__file__).resolve().parent.parent / "subscriptions" / "catalog_files" / "demo.yaml"
)


@dataclass(frozen=True)
class SessionTenant:
    tenant: Tenant
    host: str
    api_key: str


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    """Always set up the one test database: some tests commit for real (a Celery worker
    must see their rows) and take no ``db`` fixture, which pytest-django would skip."""
    from django.test.utils import setup_databases, teardown_databases

    keepdb = bool(request.config.getvalue("reuse_db")) and not request.config.getvalue("create_db")
    with django_db_blocker.unblock():
        config = setup_databases(
            verbosity=0, interactive=False, aliases={"default": None}, keepdb=keepdb
        )
    yield
    if not keepdb:
        with django_db_blocker.unblock():
            teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session", autouse=True)
def _celery_eager() -> Iterator[None]:
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield


@pytest.fixture(scope="session")
def session_tenants(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> dict[str, SessionTenant]:
    from core.audit import SYSTEM
    from subscriptions.catalog import catalog_load, catalog_sync
    from tenants.services import tenant_create, tenant_provision

    made: dict[str, SessionTenant] = {}
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        catalog_sync(data=catalog_load(DEMO_CATALOG), actor=SYSTEM)
        for slug in ("alpha", "beta"):
            existing = Tenant.objects.filter(slug=slug).first()
            if existing is not None:  # --reuse-db: the tenants of an earlier run, a new key
                from django_tenants.utils import tenant_context

                from core.audit import SYSTEM as actor
                from tenants.workspace.services import api_key_create

                with tenant_context(existing):
                    raw = api_key_create(name="test session", actor=actor).raw_key
                from core.models import AuditEntry, DomainEvent

                # Keep a reused database looking like a fresh one to the tests.
                DomainEvent.objects.filter(type="ApiKeyCreated", tenant_id=existing.pk).delete()
                AuditEntry.objects.filter(action="api_key.create", tenant_id=existing.pk).delete()
                host = existing.domains.get(is_primary=True).domain
                made[slug] = SessionTenant(tenant=existing, host=host, api_key=raw)
                continue
            created = tenant_create(
                slug=slug, name=slug.title(), email=f"owner@{slug}.example", provision=False
            )
            tenant = tenant_provision(tenant_id=created.tenant.pk)
            made[slug] = SessionTenant(
                tenant=tenant, host=created.domain.domain, api_key=created.api_key
            )
    return made


@pytest.fixture(autouse=True)
def _exact_metering(settings: Any) -> None:
    """Every request makes its own metering round trip, so counts are in Redis at once;
    credit for busy tenants is tested on its own (tests/usage/test_hot_path.py)."""
    settings.USAGE_CREDIT_MAX = 0


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    caches["default"].clear()  # one Redis database for both aliases; flushes throttles too
    snapshots_clear()  # and the process's tenant snapshots
    yield
    use_public()


@pytest.fixture
def alpha(session_tenants: dict[str, SessionTenant], db: None) -> SessionTenant:
    return session_tenants["alpha"]


@pytest.fixture
def beta(session_tenants: dict[str, SessionTenant], db: None) -> SessionTenant:
    return session_tenants["beta"]


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def tenant_client(t: SessionTenant) -> APIClient:
    client = APIClient(HTTP_HOST=t.host)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {t.api_key}")
    return client


@pytest.fixture
def alpha_client(alpha: SessionTenant) -> APIClient:
    return tenant_client(alpha)


@pytest.fixture
def beta_client(beta: SessionTenant) -> APIClient:
    return tenant_client(beta)


def committed_tenants_delete(tenant_ids: list[int]) -> None:
    """Delete what a committing test made for these tenants (rows without a schema: tenants
    created with ``provision=False``): usage, invoices, subscriptions and their periods and
    pending items, audit entries, domain events, then the tenants."""
    from billing.models import Invoice, InvoiceLine
    from core.models import AuditEntry, DomainEvent
    from subscriptions.models import PendingInvoiceItem, Subscription, SubscriptionPeriod
    from tenants.models import Tenant
    from usage.models import UsageEvent, UsageRecord

    UsageEvent.objects.filter(tenant_id__in=tenant_ids).delete()
    UsageRecord.objects.filter(tenant_id__in=tenant_ids).delete()
    invoices = Invoice.objects.filter(tenant_id__in=tenant_ids)
    InvoiceLine.objects.filter(invoice__in=invoices).delete()
    invoices.delete()
    subs = Subscription.objects.filter(tenant_id__in=tenant_ids)
    PendingInvoiceItem.objects.filter(subscription__in=subs).delete()
    SubscriptionPeriod.objects.filter(subscription__in=subs).delete()
    subs.delete()
    AuditEntry.objects.filter(tenant_id__in=tenant_ids).delete()
    DomainEvent.objects.filter(tenant_id__in=tenant_ids).delete()
    Tenant.objects.filter(pk__in=tenant_ids).delete()


def plans_remove_except(codes_before: set[str]) -> None:
    """Delete the plans (versions, quotas) that a committing test added; keep the others."""
    from subscriptions.models import Plan, PlanVersion, Quota

    added = Plan.objects.exclude(code__in=codes_before)
    added.update(current_version=None)
    Quota.objects.filter(plan_version__plan__in=added).delete()
    PlanVersion.objects.filter(plan__in=added).delete()
    added.delete()

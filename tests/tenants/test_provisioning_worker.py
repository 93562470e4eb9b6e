"""Signup to ``active`` through the real Celery path: the task is published to the broker
(Redis) on commit and run by a real worker, which clones the template schema.

These tests commit for real (a worker cannot see an uncommitted transaction), so they clean
up what they made themselves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django_tenants.utils import schema_exists
from rest_framework.test import APIClient

from config.celery import app as celery_app
from core.models import AuditEntry, DomainEvent
from tenants.models import Tenant, TenantStatus


@pytest.fixture
def committed_db(session_tenants, django_db_blocker) -> Iterator[list[str]]:
    """Database access with autocommit; drops the tenants whose slugs the test appends."""
    made: list[str] = []
    with django_db_blocker.unblock():
        yield made
        for slug in made:
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                continue
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
            from subscriptions.models import PendingInvoiceItem, Subscription, SubscriptionPeriod

            subs = Subscription.objects.filter(tenant=tenant)
            SubscriptionPeriod.objects.filter(subscription__in=subs).delete()
            PendingInvoiceItem.objects.filter(subscription__in=subs).delete()
            subs.delete()
            AuditEntry.objects.filter(tenant_id=tenant.pk).delete()
            DomainEvent.objects.filter(tenant_id=tenant.pk).delete()
            tenant.delete()


@pytest.fixture
def real_worker() -> Iterator[None]:
    celery_app.conf.task_always_eager = False
    try:
        with start_worker(celery_app, perform_ping_check=False, pool="solo", shutdown_timeout=10):
            yield
    finally:
        celery_app.conf.task_always_eager = True


def wait_for_status(tenant_id: int, status: str, timeout: float = 20.0) -> Tenant:
    deadline = time.monotonic() + timeout
    while True:
        tenant = Tenant.objects.get(pk=tenant_id)
        if tenant.status == status or time.monotonic() > deadline:
            return tenant
        time.sleep(0.05)  # polling a real worker, not moving time


def test_signup_reaches_active_through_the_broker_and_a_worker(committed_db, real_worker):
    committed_db.append("worker-made")
    client = APIClient()
    started = time.monotonic()
    response = client.post(
        "/api/v1/tenants/",
        {"slug": "worker-made", "name": "Worker Made", "email": "w@worker.example"},
        format="json",
        HTTP_HOST="localhost",
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "provisioning"

    tenant = wait_for_status(response.json()["id"], TenantStatus.ACTIVE)
    elapsed = time.monotonic() - started
    assert tenant.status == TenantStatus.ACTIVE, tenant.provisioning_error
    assert schema_exists("t_worker_made")
    print(f"signup -> active through the worker: {elapsed:.2f} s")

    me = client.get(
        "/api/v1/tenant/",
        HTTP_HOST="worker-made.localhost",
        HTTP_AUTHORIZATION=f"Bearer {response.json()['api_key']}",
    )
    assert me.status_code == 200, me.content
    assert me.json()["status"] == "active"

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context, schema_exists

from core.audit import Actor
from core.models import AuditEntry, DomainEvent
from tenants.models import Tenant, TenantStatus
from tenants.services import (
    ProvisioningError,
    tenant_create,
    tenant_provision,
    tenant_provisioning_retry,
)
from tenants.workspace.models import ApiKey, Member

pytestmark = pytest.mark.django_db

STAFF = Actor("staff", "tester")


def test_provisioning_clones_the_template_and_activates(django_capture_on_commit_callbacks):
    created = tenant_create(slug="epsilon", name="Eps", email="e@eps.example", provision=False)
    assert not schema_exists("t_epsilon")
    tenant = tenant_provision(tenant_id=created.tenant.pk)
    assert tenant.status == TenantStatus.ACTIVE
    assert tenant.provisioned_at is not None
    assert schema_exists("t_epsilon")
    with schema_context("t_epsilon"):
        assert list(Member.objects.values_list("email", "role")) == [("e@eps.example", "owner")]
        assert ApiKey.objects.get().prefix == created.api_key.rsplit("_", 1)[0]
        # Cloned, so the migration history came along and nothing needs migrating.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM t_epsilon.django_migrations WHERE app = 'workspace'"
            )
            assert cursor.fetchone()[0] >= 1
    entry = AuditEntry.objects.get(action="tenant.provision", tenant_id=tenant.pk)
    assert entry.data["template"] == "tenant_template"
    assert DomainEvent.objects.filter(type="TenantActivated", tenant_id=tenant.pk).exists()


def test_provisioning_twice_changes_nothing():
    created = tenant_create(slug="zeta", name="Z", email="z@zeta.example", provision=False)
    first = tenant_provision(tenant_id=created.tenant.pk)
    again = tenant_provision(tenant_id=created.tenant.pk)
    assert again.provisioned_at == first.provisioned_at
    with schema_context("t_zeta"):
        assert ApiKey.objects.count() == 1


def test_a_failed_provisioning_leaves_no_schema_and_a_retryable_failed_tenant(api):
    created = tenant_create(slug="broken", name="B", email="b@broken.example", provision=False)
    with override_settings(TENANT_BASE_SCHEMA="no_such_template"), pytest.raises(ProvisioningError):
        tenant_provision(tenant_id=created.tenant.pk)
    tenant = Tenant.objects.get(pk=created.tenant.pk)
    assert tenant.status == TenantStatus.FAILED
    assert "no_such_template" in tenant.provisioning_error
    assert not schema_exists("t_broken")
    assert DomainEvent.objects.filter(type="TenantProvisioningFailed", tenant_id=tenant.pk).exists()
    response = api.get("/api/v1/tenant/", HTTP_HOST="broken.localhost")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_provisioning_failed"

    # Staff retry: back to provisioning, the task runs (eagerly in tests) and it activates.
    tenant_provisioning_retry(tenant_id=tenant.pk, actor=STAFF, reason="template restored")
    # on_commit does not fire inside the test transaction; run what it would run:
    tenant = tenant_provision(tenant_id=tenant.pk)
    assert tenant.status == TenantStatus.ACTIVE
    assert tenant.provisioning_error == ""
    assert schema_exists("t_broken")


def test_a_failure_midway_rolls_the_clone_back(monkeypatch):
    """A crash after the schema was cloned (storing the first key) leaves no schema."""
    from tenants.workspace import services as workspace_services

    created = tenant_create(slug="midway", name="M", email="m@midway.example", provision=False)

    def explode(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(workspace_services, "api_key_store", explode)
    with pytest.raises(ProvisioningError):
        tenant_provision(tenant_id=created.tenant.pk)
    assert not schema_exists("t_midway")
    assert Tenant.objects.get(pk=created.tenant.pk).status == TenantStatus.FAILED


def test_cannot_provision_a_closed_tenant():
    from core.errors import Conflict
    from tenants.services import tenant_close

    created = tenant_create(slug="gone", name="G", email="g@gone.example", provision=False)
    tenant_close(tenant_id=created.tenant.pk, actor=STAFF, reason="spam")
    with pytest.raises(Conflict):
        tenant_provision(tenant_id=created.tenant.pk)


def test_migrate_schemas_migrates_the_template_and_skips_tenants_without_a_schema(capsys):
    from django.core.management import call_command

    created = tenant_create(slug="no-schema-yet", name="N", email="n@example.com", provision=False)
    call_command("migrate_schemas", tenant=True, interactive=False, verbosity=1)
    lines = capsys.readouterr().out  # django-tenants prefixes each schema's lines on stdout
    assert "standard:tenant_template" in lines
    assert "standard:t_alpha" in lines
    assert created.tenant.schema_name not in lines

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core.models import AuditEntry
from tenants.models import Domain, Tenant, TenantStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser(
        "staffer", "staff@example.com", "pw-not-used-elsewhere"
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def test_admin_login_is_on_the_public_host_only(api, alpha):
    assert Client(HTTP_HOST="localhost").get("/admin/login/").status_code == 200
    response = Client(HTTP_HOST=alpha.host).get("/admin/login/")
    assert response.status_code == 404  # no admin on tenant hosts


def test_changelist_search_and_filter(staff_client, alpha, beta):
    response = staff_client.get("/admin/tenants/tenant/", {"q": "alpha"})
    assert response.status_code == 200
    assert b"alpha.localhost" in response.content
    assert b"beta.localhost" not in response.content
    response = staff_client.get("/admin/tenants/tenant/", {"status__exact": "suspended"})
    assert response.status_code == 200
    assert b"alpha.localhost" not in response.content


def test_change_page_shows_domains_inline(staff_client, alpha):
    response = staff_client.get(f"/admin/tenants/tenant/{alpha.tenant.pk}/change/")
    assert response.status_code == 200
    assert b"alpha.localhost" in response.content
    assert b"domains-TOTAL_FORMS" in response.content


def test_suspend_action_asks_for_a_reason_then_suspends_and_audits(
    staff_client, alpha, django_capture_on_commit_callbacks
):
    url = "/admin/tenants/tenant/"
    ask = staff_client.post(url, {"action": "suspend", "_selected_action": [alpha.tenant.pk]})
    assert ask.status_code == 200
    assert b"give a reason" in ask.content
    assert Tenant.objects.get(pk=alpha.tenant.pk).status == TenantStatus.ACTIVE

    # Without a reason it asks again and changes nothing.
    again = staff_client.post(
        url,
        {"action": "suspend", "_selected_action": [alpha.tenant.pk], "apply": "1", "reason": ""},
    )
    assert again.status_code == 200
    assert Tenant.objects.get(pk=alpha.tenant.pk).status == TenantStatus.ACTIVE

    with django_capture_on_commit_callbacks(execute=True):
        done = staff_client.post(
            url,
            {
                "action": "suspend",
                "_selected_action": [alpha.tenant.pk],
                "apply": "1",
                "reason": "chargeback",
            },
        )
    assert done.status_code == 302
    tenant = Tenant.objects.get(pk=alpha.tenant.pk)
    assert tenant.status == TenantStatus.SUSPENDED
    assert tenant.status_reason == "chargeback"
    entry = AuditEntry.objects.get(action="tenant.suspend", tenant_id=tenant.pk)
    assert entry.actor == "staff:staffer"
    assert entry.reason == "chargeback"
    assert api_status(alpha) == 403

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            url,
            {
                "action": "activate",
                "_selected_action": [alpha.tenant.pk],
                "apply": "1",
                "reason": "paid",
            },
        )
    assert Tenant.objects.get(pk=alpha.tenant.pk).status == TenantStatus.ACTIVE
    assert api_status(alpha) == 200


def api_status(t):
    client = Client(HTTP_HOST=t.host, HTTP_AUTHORIZATION=f"Bearer {t.api_key}")
    return client.get("/api/v1/tenant/").status_code


def test_an_impossible_action_is_reported_not_applied(staff_client, alpha):
    response = staff_client.post(
        "/admin/tenants/tenant/",
        {"action": "activate", "_selected_action": [alpha.tenant.pk], "apply": "1", "reason": "x"},
        follow=True,
    )
    assert b"cannot become active" in response.content


def test_editing_domains_inline_invalidates_routes(
    staff_client, alpha, django_capture_on_commit_callbacks
):
    assert api_status(alpha) == 200
    domain = Domain.objects.get(tenant=alpha.tenant)
    data = {
        "slug": "alpha",
        "name": "Alpha",
        "contact_email": "owner@alpha.example",
        "timezone": "UTC",
        "currency": "USD",
        "config": "{}",
        "domains-TOTAL_FORMS": "1",
        "domains-INITIAL_FORMS": "1",
        "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000",
        "domains-0-id": str(domain.pk),
        "domains-0-tenant": str(alpha.tenant.pk),
        "domains-0-domain": "renamed-alpha.localhost",
        "domains-0-is_primary": "on",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/admin/tenants/tenant/{alpha.tenant.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]
    assert AuditEntry.objects.filter(
        action="tenant.domains_change", tenant_id=alpha.tenant.pk
    ).exists()
    old = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Bearer {alpha.api_key}")
    new = Client(HTTP_HOST="renamed-alpha.localhost", HTTP_AUTHORIZATION=f"Bearer {alpha.api_key}")
    assert old.get("/api/v1/tenant/").status_code == 404
    assert new.get("/api/v1/tenant/").status_code == 200


def test_invalid_config_is_rejected_in_the_admin(staff_client, alpha):
    domain = Domain.objects.get(tenant=alpha.tenant)
    data = {
        "slug": "alpha",
        "name": "Alpha",
        "contact_email": "owner@alpha.example",
        "timezone": "UTC",
        "currency": "USD",
        "config": '{"branding": {"color": "red"}}',
        "domains-TOTAL_FORMS": "1",
        "domains-INITIAL_FORMS": "1",
        "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000",
        "domains-0-id": str(domain.pk),
        "domains-0-tenant": str(alpha.tenant.pk),
        "domains-0-domain": "alpha.localhost",
        "domains-0-is_primary": "on",
    }
    response = staff_client.post(f"/admin/tenants/tenant/{alpha.tenant.pk}/change/", data)
    assert response.status_code == 200
    assert b"branding/color" in response.content
    assert Tenant.objects.get(pk=alpha.tenant.pk).config == {}


def test_audit_log_is_read_only(staff_client):
    assert staff_client.get("/admin/core/auditentry/").status_code == 200
    assert staff_client.get("/admin/core/auditentry/add/").status_code == 403

from __future__ import annotations

import pytest
from django.test import override_settings

from core.models import AuditEntry, DomainEvent
from tenants.models import Domain, Tenant, TenantStatus
from tenants.workspace.keys import key_hash

pytestmark = pytest.mark.django_db

SIGNUP = "/api/v1/tenants/"


def signup(api, **body):
    return api.post(SIGNUP, body, format="json", HTTP_HOST="localhost")


def field_codes(response, field):
    return [item["code"] for item in response.json()["error"]["details"][field]]


def test_signup_creates_a_provisioning_tenant_with_domain_key_audit_and_event(
    api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = signup(api, slug="acme-corp", name="Acme Corp", email="Owner@Acme.example")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "slug", "name", "status", "domain", "api_key"}
    assert body["slug"] == "acme-corp"
    assert body["status"] == "provisioning"
    assert body["domain"] == "acme-corp.localhost"
    tenant = Tenant.objects.get(pk=body["id"])
    assert tenant.schema_name == "t_acme_corp"
    assert tenant.contact_email == "owner@acme.example"
    assert Domain.objects.get(tenant=tenant).domain == "acme-corp.localhost"
    # The key is never stored in the clear: only its hash waits for provisioning.
    assert tenant.pending_key_hash == key_hash(body["api_key"])
    assert body["api_key"] not in str(Tenant.objects.filter(pk=tenant.pk).values().first())
    assert AuditEntry.objects.filter(action="tenant.create", tenant_id=tenant.pk).count() == 1
    assert DomainEvent.objects.filter(type="TenantCreated", tenant_id=tenant.pk).count() == 1


def test_signup_provisions_on_commit_and_the_key_then_works(
    api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = signup(api, slug="gamma", name="Gamma", email="g@gamma.example")
    assert response.status_code == 201
    tenant = Tenant.objects.get(slug="gamma")
    assert tenant.status == TenantStatus.ACTIVE
    assert tenant.pending_key_hash == ""

    me = api.get(
        "/api/v1/tenant/",
        HTTP_HOST="gamma.localhost",
        HTTP_AUTHORIZATION=f"Bearer {response.json()['api_key']}",
    )
    assert me.status_code == 200, me.content
    assert me.json()["slug"] == "gamma"


@pytest.mark.parametrize(
    ("slug", "code"),
    [
        ("admin", "reserved"),
        ("www", "reserved"),
        ("stripe", "reserved"),
        ("ab", "length"),
        ("a" * 41, "length"),
        ("Acme", "malformed"),
        ("1acme", "malformed"),
        ("acme-", "malformed"),
        ("ac--me", "malformed"),
        ("ac_me", "malformed"),
        ("acme.corp", "malformed"),
    ],
)
def test_signup_rejects_bad_slugs_with_specific_codes(api, slug, code):
    response = signup(api, slug=slug, name="X", email="x@example.com")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert code in field_codes(response, "slug")
    assert not Tenant.objects.filter(slug=slug).exists()


def test_signup_missing_fields_name_each_field(api):
    response = api.post(SIGNUP, {}, format="json", HTTP_HOST="localhost")
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert {f: [i["code"] for i in details[f]] for f in ("slug", "name", "email")} == {
        "slug": ["required"],
        "name": ["required"],
        "email": ["required"],
    }


def test_signup_malformed_email_timezone_currency(api):
    response = signup(
        api, slug="delta", name="D", email="nope", timezone="Mars/Base", currency="XXX1"
    )
    assert response.status_code == 400
    assert field_codes(response, "email") == ["invalid"]
    assert field_codes(response, "timezone") == ["invalid_timezone"]
    assert "invalid_currency" in field_codes(response, "currency") or "max_length" in field_codes(
        response, "currency"
    )


def test_signup_taken_slug_is_409(api, alpha):
    response = signup(api, slug="alpha", name="Again", email="a@example.com")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "slug_taken"


def test_signup_body_must_be_json(api):
    response = api.post(SIGNUP, "slug=x", content_type="text/plain", HTTP_HOST="localhost")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_signup_invalid_json_is_parse_error(api):
    response = api.post(SIGNUP, "{not json", content_type="application/json", HTTP_HOST="localhost")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


@override_settings(SIGNUP_RATE="2/minute")
def test_signup_is_throttled_per_client_ip(api):
    def from_ip(ip, slug):
        return api.post(
            SIGNUP,
            {"slug": slug, "name": "T", "email": "t@example.com"},
            format="json",
            HTTP_HOST="localhost",
            REMOTE_ADDR=ip,
        )

    assert [from_ip("10.0.0.1", f"throttle{i}").status_code for i in range(2)] == [201, 201]
    limited = from_ip("10.0.0.1", "throttle3")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "throttled"
    assert int(limited["Retry-After"]) > 0
    assert not Tenant.objects.filter(slug="throttle3").exists()
    # Another client IP has its own allowance.
    assert from_ip("10.0.0.2", "throttle4").status_code == 201

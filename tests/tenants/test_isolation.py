from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from tenants.workspace.models import ApiKey, Member

pytestmark = pytest.mark.django_db


def test_rows_in_one_tenant_schema_are_invisible_from_another(alpha, beta):
    with schema_context(alpha.tenant.schema_name):
        Member.objects.create(email="only-in-alpha@example.com")
        assert Member.objects.filter(email="only-in-alpha@example.com").exists()
    with schema_context(beta.tenant.schema_name):
        assert not Member.objects.filter(email="only-in-alpha@example.com").exists()
        assert list(Member.objects.values_list("email", flat=True)) == ["owner@beta.example"]


def test_api_keys_listed_are_only_the_tenants_own(alpha_client, beta_client):
    created = alpha_client.post("/api/v1/api-keys/", {"name": "alpha ci"}, format="json")
    assert created.status_code == 201
    alpha_names = [k["name"] for k in alpha_client.get("/api/v1/api-keys/").json()]
    beta_names = [k["name"] for k in beta_client.get("/api/v1/api-keys/").json()]
    assert "alpha ci" in alpha_names
    assert "alpha ci" not in beta_names
    with schema_context("t_beta"):
        assert not ApiKey.objects.filter(name="alpha ci").exists()


def test_a_key_of_tenant_a_is_401_on_tenant_b(api, alpha, beta):
    response = api.get(
        "/api/v1/tenant/", HTTP_HOST=beta.host, HTTP_AUTHORIZATION=f"Bearer {alpha.api_key}"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    # ...also through the X-Tenant header on the base domain.
    response = api.get(
        "/api/v1/tenant/",
        HTTP_HOST="localhost",
        HTTP_X_TENANT="beta",
        HTTP_AUTHORIZATION=f"Bearer {alpha.api_key}",
    )
    assert response.status_code == 401


def test_a_key_is_401_on_b_even_when_warm_in_the_cache_for_a(api, alpha, beta):
    ok = api.get(
        "/api/v1/tenant/", HTTP_HOST=alpha.host, HTTP_AUTHORIZATION=f"Bearer {alpha.api_key}"
    )
    assert ok.status_code == 200
    response = api.get(
        "/api/v1/tenant/", HTTP_HOST=beta.host, HTTP_AUTHORIZATION=f"Bearer {alpha.api_key}"
    )
    assert response.status_code == 401


def test_missing_and_malformed_keys_are_401(api, alpha):
    for headers in (
        {},
        {"HTTP_AUTHORIZATION": "Bearer nope"},
        {"HTTP_AUTHORIZATION": "Basic abc"},
        {"HTTP_AUTHORIZATION": "Bearer tnr_00000000_" + "0" * 48},
    ):
        response = api.get("/api/v1/tenant/", HTTP_HOST=alpha.host, **headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] in {"not_authenticated", "authentication_failed"}
        assert response["WWW-Authenticate"].startswith("Bearer")

from __future__ import annotations

import pytest
from django.core.cache import caches

pytestmark = pytest.mark.django_db


def test_healthz_checks_database_and_redis(api):
    response = api.get("/healthz", HTTP_HOST="127.0.0.1")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True


def test_healthz_is_503_when_redis_is_down(api, monkeypatch):
    client = caches["shared"]._cache.get_client(write=True)

    def down():
        raise ConnectionError("redis is down")

    monkeypatch.setattr(type(client), "ping", lambda self: down())
    response = api.get("/healthz", HTTP_HOST="127.0.0.1")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_unknown_url_has_the_error_shape(api):
    response = api.get("/nope/", HTTP_HOST="localhost")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not found.", "details": {}}
    }


def test_wrong_method_has_the_error_shape(alpha_client):
    response = alpha_client.put("/api/v1/tenant/", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_openapi_schema_documents_public_and_tenant_endpoints(api):
    response = api.get("/api/v1/schema/", HTTP_HOST="localhost", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/v1/tenants/",
        "/api/v1/tenant/",
        "/api/v1/api-keys/",
        "/api/v1/api-keys/{key_id}/",
    ):
        assert path in schema["paths"], path
    assert "ApiKey" in schema["components"]["securitySchemes"]


def test_docs_page_is_served(api):
    response = api.get("/api/v1/docs/", HTTP_HOST="localhost")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.audit import Actor
from tenants.models import Domain, TenantStatus
from tenants.services import tenant_activate, tenant_close, tenant_suspend

pytestmark = pytest.mark.django_db

STAFF = Actor("staff", "tester")
ME = "/api/v1/tenant/"


def get(api, host, key=None, **headers):
    if key:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return api.get(ME, HTTP_HOST=host, **headers)


def test_routes_by_subdomain(api, alpha):
    response = get(api, "alpha.localhost", alpha.api_key)
    assert response.status_code == 200
    assert response.json()["slug"] == "alpha"


def test_routes_by_subdomain_with_port_and_upper_case(api, alpha):
    response = get(api, "ALPHA.localhost:8000", alpha.api_key)
    assert response.status_code == 200
    assert response.json()["slug"] == "alpha"


def test_routes_by_x_tenant_header_on_the_base_domain(api, alpha):
    response = get(api, "localhost", alpha.api_key, HTTP_X_TENANT="alpha")
    assert response.status_code == 200
    assert response.json()["slug"] == "alpha"


def test_routes_by_x_tenant_header_on_a_public_ip_host(api, alpha):
    response = get(api, "127.0.0.1:8000", alpha.api_key, HTTP_X_TENANT="alpha")
    assert response.status_code == 200


def test_routes_by_custom_domain(api, alpha, django_capture_on_commit_callbacks):
    Domain.objects.create(domain="api.alpha-corp.example", tenant=alpha.tenant, is_primary=False)
    response = get(api, "api.alpha-corp.example", alpha.api_key)
    assert response.status_code == 200
    assert response.json()["slug"] == "alpha"


def test_unknown_subdomain_unknown_header_and_unknown_host_are_404(api):
    for response in (
        get(api, "nobody.localhost"),
        get(api, "localhost", HTTP_X_TENANT="nobody"),
        get(api, "evil.example.org"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "tenant_not_found"


def test_public_host_without_header_serves_the_public_urls(api):
    response = api.get(ME, HTTP_HOST="localhost")
    assert response.status_code == 404  # /api/v1/tenant/ is a tenant URL only
    assert response.json()["error"]["code"] == "not_found"


def test_x_tenant_cannot_override_the_subdomain(api, alpha, beta):
    response = get(api, "alpha.localhost", alpha.api_key, HTTP_X_TENANT="beta")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "tenant_mismatch"
    # ...and with beta's key it reaches neither tenant.
    response = get(api, "alpha.localhost", beta.api_key, HTTP_X_TENANT="beta")
    assert response.status_code == 400
    # The same slug in the header is fine.
    assert get(api, "alpha.localhost", alpha.api_key, HTTP_X_TENANT="alpha").status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ("suspend", 403, "tenant_suspended"),
        ("close", 410, "tenant_closed"),
    ],
)
def test_non_active_statuses(api, alpha, django_capture_on_commit_callbacks, change, status, code):
    assert get(api, alpha.host, alpha.api_key).status_code == 200  # warm the route cache
    with django_capture_on_commit_callbacks(execute=True):
        if change == "suspend":
            tenant_suspend(tenant_id=alpha.tenant.pk, actor=STAFF, reason="unpaid")
        else:
            tenant_close(tenant_id=alpha.tenant.pk, actor=STAFF, reason="asked to")
    response = get(api, alpha.host, alpha.api_key)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert get(api, "localhost", alpha.api_key, HTTP_X_TENANT="alpha").status_code == status


def test_suspend_then_activate_restores_access(api, alpha, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        tenant_suspend(tenant_id=alpha.tenant.pk, actor=STAFF, reason="unpaid")
    assert get(api, alpha.host, alpha.api_key).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        tenant_activate(tenant_id=alpha.tenant.pk, actor=STAFF, reason="paid")
    assert get(api, alpha.host, alpha.api_key).status_code == 200


def test_provisioning_is_503_with_retry_after(api, django_capture_on_commit_callbacks):
    from tenants.services import tenant_create

    with django_capture_on_commit_callbacks(execute=True):
        created = tenant_create(slug="pending", name="P", email="p@example.com", provision=False)
    assert created.tenant.status == TenantStatus.PROVISIONING
    response = get(api, "pending.localhost", created.api_key)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_provisioning"
    assert int(response["Retry-After"]) > 0


def test_warm_request_makes_no_query_to_resolve_its_tenant(api, alpha):
    get(api, alpha.host, alpha.api_key)  # warm: route and key in the cache
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/healthz", HTTP_HOST=alpha.host)
    assert response.status_code == 200
    # healthz itself runs exactly one query, SELECT 1: nothing to resolve the tenant.
    assert [q["sql"] for q in queries.captured_queries if "SET search_path" not in q["sql"]] == [
        "SELECT 1"
    ]


def test_warm_authenticated_request_queries_only_what_the_view_reads(api, alpha):
    get(api, alpha.host, alpha.api_key)
    with CaptureQueriesContext(connection) as queries:
        assert get(api, alpha.host, alpha.api_key).status_code == 200
    sqls = [q["sql"] for q in queries.captured_queries if "SET search_path" not in q["sql"]]
    # The view reads the tenant and its domains; routing and the API key come from the cache.
    assert len(sqls) == 2, sqls
    assert not any("workspace_apikey" in sql for sql in sqls)
    assert not any('"tenants_domain"."domain" =' in sql for sql in sqls)


def test_domain_change_invalidates_cached_routes(api, alpha, django_capture_on_commit_callbacks):
    from tenants.services import tenant_domains_changed

    domain = Domain.objects.create(domain="old.alpha.example", tenant=alpha.tenant)
    assert get(api, "old.alpha.example", alpha.api_key).status_code == 200  # cached now
    domain.domain = "new.alpha.example"
    domain.save()
    with django_capture_on_commit_callbacks(execute=True):
        tenant_domains_changed(
            tenant_id=alpha.tenant.pk, actor=STAFF, former_hosts=["old.alpha.example"]
        )
    assert get(api, "old.alpha.example", alpha.api_key).status_code == 404
    assert get(api, "new.alpha.example", alpha.api_key).status_code == 200


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("Acme.localhost", "acme.localhost"),
        ("acme.localhost:8000", "acme.localhost"),
        ("[::1]", "[::1]"),
        ("[::1]:8000", "[::1]"),
        ("127.0.0.1:80", "127.0.0.1"),
    ],
)
def test_the_router_drops_the_port_of_a_validated_host(host, domain):
    from tenants.middleware import _domain

    assert _domain(host) == domain


def test_log_lines_of_a_request_carry_its_id_and_tenant(api, alpha, monkeypatch):
    from core.logging import merge_request_context
    from tenants.api.views import WhoAmIView

    seen: list[dict] = []
    real_get = WhoAmIView.get

    def get(self, request):
        seen.append(merge_request_context(None, "info", {"event": "x"}))
        return real_get(self, request)

    monkeypatch.setattr(WhoAmIView, "get", get)
    response = api.get(
        "/api/v1/whoami/",
        HTTP_HOST=alpha.host,
        HTTP_AUTHORIZATION=f"Bearer {alpha.api_key}",
        HTTP_X_REQUEST_ID="req-123",
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-123"
    assert seen == [{"event": "x", "request_id": "req-123", "tenant": "alpha"}]
    assert merge_request_context(None, "info", {}) == {}  # nothing left after the request


def test_a_request_id_that_is_not_a_plain_token_is_replaced(api, alpha):
    auth = {"HTTP_HOST": alpha.host, "HTTP_AUTHORIZATION": f"Bearer {alpha.api_key}"}
    kept = api.get("/api/v1/whoami/", HTTP_X_REQUEST_ID="trace-1.2:3_x", **auth)
    assert kept["X-Request-ID"] == "trace-1.2:3_x"
    for bad in ("has space", "x" * 65, "semi;colon"):
        replaced = api.get("/api/v1/whoami/", HTTP_X_REQUEST_ID=bad, **auth)
        assert replaced["X-Request-ID"] != bad
        assert len(replaced["X-Request-ID"]) == 32


def test_a_remembered_host_is_checked_again_when_allowed_hosts_change(api, alpha, settings):
    settings.ALLOWED_HOSTS = [".localhost"]
    assert get(api, "alpha.localhost", alpha.api_key).status_code == 200
    assert get(api, "evil.example.org").status_code == 400  # DisallowedHost: never kept
    assert get(api, "evil.example.org").status_code == 400
    settings.ALLOWED_HOSTS = ["localhost"]  # alpha.localhost no longer allowed
    assert get(api, "alpha.localhost", alpha.api_key).status_code == 400
    settings.ALLOWED_HOSTS = [".localhost"]
    assert get(api, "alpha.localhost", alpha.api_key).status_code == 200


def test_behind_x_forwarded_host_the_forwarded_host_routes(api, alpha, beta, settings):
    settings.USE_X_FORWARDED_HOST = True
    response = get(api, "beta.localhost", alpha.api_key, HTTP_X_FORWARDED_HOST="alpha.localhost")
    assert response.status_code == 200
    assert response.json()["slug"] == "alpha"
    settings.USE_X_FORWARDED_HOST = False
    response = get(api, "beta.localhost", beta.api_key, HTTP_X_FORWARDED_HOST="alpha.localhost")
    assert response.json()["slug"] == "beta"

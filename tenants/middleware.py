"""Tenant routing: subdomain or custom domain, then ``X-Tenant`` on a public host.

- ``<slug>.<base domain>`` and custom domains resolve through the Domain table (cached).
- On the base domain (or another public host) an ``X-Tenant: <slug>`` header selects the
  tenant for clients that cannot use subdomains. On a tenant's own host the header cannot
  point elsewhere: a mismatch is refused with 400.
- Unknown tenant 404, suspended 403, provisioning 503 with ``Retry-After``, closed 410, each
  with the API's one error body.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port

from core.api.errors import error_response
from tenants.db import current_tenant, use_public, use_tenant
from tenants.models import TenantStatus
from tenants.routing import RoutedTenant, route_for_host, route_for_slug

PROVISIONING_RETRY_AFTER = "2"


def _status_refusal(tenant: RoutedTenant) -> HttpResponse | None:
    status = tenant.status
    if status == TenantStatus.ACTIVE:
        return None
    if status == TenantStatus.SUSPENDED:
        return error_response(
            status_code=403,
            code="tenant_suspended",
            message="This tenant is suspended.",
            details={"tenant": tenant.slug},
        )
    if status == TenantStatus.CLOSED:
        return error_response(
            status_code=410,
            code="tenant_closed",
            message="This tenant is closed.",
            details={"tenant": tenant.slug},
        )
    if status == TenantStatus.FAILED:
        return error_response(
            status_code=503,
            code="tenant_provisioning_failed",
            message="This tenant could not be provisioned yet; it is being retried.",
            details={"tenant": tenant.slug},
            headers={"Retry-After": "30"},
        )
    return error_response(
        status_code=503,
        code="tenant_provisioning",
        message="This tenant is being provisioned.",
        details={"tenant": tenant.slug},
        headers={"Retry-After": PROVISIONING_RETRY_AFTER},
    )


class TenantRoutingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.base_domain = settings.TENANTRY_BASE_DOMAIN
        self.public_hosts = {self.base_domain, *settings.TENANTRY_PUBLIC_HOSTS}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        structlog.contextvars.clear_contextvars()
        request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id[:64])
        use_public()

        host, _port = split_domain_port(request.get_host())
        host = host.lower()
        header_slug = request.headers.get("X-Tenant", "").strip().lower()

        if host in self.public_hosts:
            if not header_slug:
                request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
                request.tenant = current_tenant()  # type: ignore[attr-defined]
                structlog.contextvars.bind_contextvars(tenant="public")
                return self._respond(request, request_id)
            tenant = route_for_slug(header_slug)
        else:
            tenant = route_for_host(host)
            if tenant is not None and header_slug and header_slug != tenant.slug:
                return error_response(
                    status_code=400,
                    code="tenant_mismatch",
                    message="The X-Tenant header names another tenant than the host.",
                    details={"host": host, "x_tenant": header_slug},
                )

        if tenant is None:
            return error_response(
                status_code=404, code="tenant_not_found", message="No such tenant."
            )
        structlog.contextvars.bind_contextvars(tenant=tenant.slug)
        refusal = _status_refusal(tenant)
        if refusal is not None:
            return refusal

        model = tenant.as_model()
        model.domain_url = host
        use_tenant(model)
        request.tenant = model  # type: ignore[attr-defined]
        request.urlconf = settings.ROOT_URLCONF
        try:
            return self._respond(request, request_id)
        finally:
            use_public()

    def _respond(self, request: HttpRequest, request_id: str) -> HttpResponse:
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response

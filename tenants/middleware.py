"""Tenant routing: subdomain or custom domain, then ``X-Tenant`` on a public host.

- ``<slug>.<base domain>`` and custom domains resolve through the Domain table (cached).
- On the base domain (or another public host) an ``X-Tenant: <slug>`` header selects the
  tenant for clients that cannot use subdomains. On a tenant's own host the header cannot
  point elsewhere: a mismatch is refused with 400.
- Unknown tenant 404, suspended 403, provisioning 503 with ``Retry-After``, closed 410, each
  with the API's one error body.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.api.errors import error_response
from core.api.headers import headers_set_safe
from core.conf import HotSettings
from core.logging import request_context_begin, request_context_bind, request_context_end
from core.snapshots import (
    StaleSnapshot,
    generation_check,
    snapshot_close,
    snapshot_current,
    snapshot_drop,
    snapshot_find,
    snapshot_index,
    snapshot_open,
)
from tenants.db import current_tenant, public_use, request_connection
from tenants.models import TenantStatus
from tenants.routing import RoutedTenant, route_for_host, route_for_slug

PROVISIONING_RETRY_AFTER = "2"
_ACTIVE = TenantStatus.ACTIVE.value


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


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _request_id(given: str | None) -> str:
    """The client's ``X-Request-ID`` when it is a plain token of at most 64 characters, else
    a new one (not a secret, just unique: random's generator is reseeded in every worker)."""
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return f"{random.getrandbits(128):032x}"


_HOSTS_MAX = 1_000
_hosts: dict[str, str] = {}  # Host header -> its domain, for hosts get_host() accepted


def _hosts_clear() -> None:
    _hosts.clear()


_conf = HotSettings(
    "ALLOWED_HOSTS",
    "DEBUG",
    "USE_X_FORWARDED_HOST",
    "PUBLIC_SCHEMA_URLCONF",
    on_change=_hosts_clear,
)


def _host(request: HttpRequest) -> str:
    """The request's domain (no port), validated by ``get_host()`` against ALLOWED_HOSTS.

    A Host header once accepted is remembered (at most ``_HOSTS_MAX``; forgotten whenever
    ALLOWED_HOSTS, DEBUG or USE_X_FORWARDED_HOST change), which skips the validation
    CommonMiddleware repeats anyway. Behind ``USE_X_FORWARDED_HOST`` it is never skipped.
    """
    raw = request.META.get("HTTP_HOST")
    if raw is None or _conf.USE_X_FORWARDED_HOST:
        return _domain(request.get_host())
    known = _hosts.get(raw)
    if known is None:
        known = _domain(request.get_host())  # raises DisallowedHost: nothing is kept
        if len(_hosts) >= _HOSTS_MAX:
            _hosts.clear()
        _hosts[raw] = known
    return known


def _domain(host: str) -> str:
    """``host[:port]`` (as ``get_host()`` gives it, already validated) without the port."""
    if host.endswith("]"):  # an IPv6 literal without a port
        return host.lower()
    name, colon, _port = host.rpartition(":")
    return (name if colon else host).lower()


def _resolve(
    kind: str, name: str, load: Callable[[str], RoutedTenant | None], *, reuse: bool
) -> RoutedTenant | None:
    """The route for a host or slug, from the process's snapshot when it has one.

    On a miss the route comes from the Redis cache (or the database) and is kept in the
    tenant's snapshot; a snapshot made just now had its token read after that load, so the
    route is loaded once more to be tagged with a token no newer than itself.
    """
    index_key = kind + name
    if reuse:
        route: RoutedTenant | None = snapshot_find(index_key)  # entered when found
        if route is not None:
            return route
    loaded = load(name)
    if loaded is None:
        return None
    snapshot = snapshot_open(loaded.id, reuse=reuse)
    if snapshot.token is not None and snapshot.fresh:
        again = load(name)
        if again is None or again.id != loaded.id:  # moved meanwhile: keep nothing
            snapshot_close()
            return again
        loaded = again
    snapshot_index(index_key, snapshot, loaded)
    return loaded


def _model(route: RoutedTenant, host: str) -> Any:
    """The Tenant instance for ``connection.set_tenant``, built once per snapshot and host."""
    snapshot = snapshot_current()
    if snapshot is None or snapshot.tenant_id != route.id:
        model = route.as_model()
        model.domain_url = host
        return model
    key = "model:" + host
    kept: Any = snapshot.values.get(key)
    if kept is None:
        kept = route.as_model()
        kept.domain_url = host
        snapshot.values[key] = kept
    return kept


class TenantRoutingMiddleware:
    """Routes every request to its tenant's schema (or the public one).

    Must come first in ``MIDDLEWARE``, directly followed by
    ``usage.middleware.UsageMeteringMiddleware``: that one checks the tenant snapshot this one
    served the request from (in the metering round trip, or with one ``GET``) and answers
    :class:`~core.snapshots.StaleSnapshot` when it was stale; the request is then served
    again, from fresh data, before anything else has seen it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.base_domain: str = settings.TENANTRY_BASE_DOMAIN
        self.public_hosts = {self.base_domain, *settings.TENANTRY_PUBLIC_HOSTS}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _request_id(request.META.get("HTTP_X_REQUEST_ID"))
        conn = request_connection()
        log_context = request_context_begin(request_id=request_id)
        try:
            response = self._route(request, request_id, reuse=True, conn=conn)
            if isinstance(response, StaleSnapshot):
                snapshot = snapshot_current()
                if snapshot is not None:
                    snapshot_drop(snapshot.tenant_id)
                snapshot_close()
                request.__dict__.pop("_tenantry_principal", None)  # verify the key again
                request.__dict__.pop("_tenantry_schema", None)
                public_use(conn)
                response = self._route(request, request_id, reuse=False, conn=conn)
            if isinstance(response, StaleSnapshot):  # changed again within the request
                response = error_response(
                    status_code=503,
                    code="tenant_changed",
                    message="The tenant changed while this request was served; try again.",
                    headers={"Retry-After": "1"},
                )
            return response
        finally:
            snapshot_close()
            public_use(conn)
            request_context_end(log_context)

    def _route(
        self, request: HttpRequest, request_id: str, *, reuse: bool, conn: Any
    ) -> HttpResponse:
        public_use(conn)
        host = _host(request)
        header_slug = request.META.get("HTTP_X_TENANT")
        if header_slug:
            header_slug = header_slug.strip().lower()

        if host in self.public_hosts:
            if not header_slug:
                request.urlconf = _conf.PUBLIC_SCHEMA_URLCONF
                request.tenant = current_tenant()  # type: ignore[attr-defined]
                request_context_bind(tenant="public")
                return self._respond(request, request_id)
            tenant = _resolve("slug:", header_slug, route_for_slug, reuse=reuse)
        else:
            tenant = _resolve("host:", host, route_for_host, reuse=reuse)
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
        request_context_bind(tenant=tenant.slug)
        refusal = None if tenant.status == _ACTIVE else _status_refusal(tenant)
        if refusal is not None:
            snapshot = snapshot_current()
            if (
                snapshot is not None
                and not snapshot.fresh
                and generation_check(snapshot) is not True
            ):
                return StaleSnapshot()  # refused from a snapshot that may be out of date
            return refusal

        model = _model(tenant, host)
        conn.set_tenant(model)
        request.tenant = model  # type: ignore[attr-defined]
        request._tenantry_schema = model.schema_name  # type: ignore[attr-defined]
        # A tenant host is served by ROOT_URLCONF, Django's default, so no request.urlconf
        # (setting one costs a context-local write and reset on every request).
        return self._respond(request, request_id)

    def _respond(self, request: HttpRequest, request_id: str) -> HttpResponse:
        response = self.get_response(request)
        if type(response) is not StaleSnapshot:
            headers_set_safe(response, "x-request-id", "X-Request-ID", request_id)
        return response

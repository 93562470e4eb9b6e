"""``Authorization: Bearer <api key>``, verified against the current tenant's own schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.snapshots import snapshot_value
from tenants.db import PUBLIC_SCHEMA, current_schema
from tenants.workspace.keys import key_hash
from tenants.workspace.selectors import VerifiedKey, api_key_verify

KEYWORD = "Bearer"
_SCHEME = KEYWORD.lower()
_UNSET: Any = object()


@dataclass(frozen=True)
class TenantPrincipal:
    """``request.user`` for a request made with a tenant API key."""

    tenant_id: int
    tenant_slug: str
    api_key: VerifiedKey
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_staff: bool = False

    @property
    def actor_ident(self) -> str:
        return self.api_key.prefix


def _verify(request: HttpRequest) -> TenantPrincipal | str | None:
    """The request's principal, None without credentials, or an error message.

    Memoised on the request, so the metering middleware and DRF verify a key once.
    """
    memo = request.__dict__.get("_tenantry_principal", _UNSET)
    if memo is not _UNSET:
        return memo
    result: TenantPrincipal | str | None = None
    header = request.META.get("HTTP_AUTHORIZATION")
    tenant: Any = getattr(request, "tenant", None)
    if header and tenant is not None:
        # The key is looked up in the current schema: it must be this tenant's own (the
        # router records the schema it switched to; anything else is checked on the
        # connection).
        schema = request.__dict__.get("_tenantry_schema") or current_schema()
        if schema == tenant.schema_name and schema != PUBLIC_SCHEMA:
            scheme, _, raw_key = header.partition(" ")
            raw_key = raw_key.strip()
            if not raw_key or scheme.lower() != _SCHEME:
                result = "Use 'Authorization: Bearer <api key>'."
            else:
                result = snapshot_value(
                    tenant.id,
                    "principal:" + key_hash(raw_key),
                    _principal,
                    tenant,
                    raw_key,
                    keep=_is_principal,
                )
    request._tenantry_principal = result  # type: ignore[attr-defined]
    return result


def _principal(tenant: Any, raw_key: str) -> TenantPrincipal | str:
    verified = api_key_verify(raw_key=raw_key)
    if verified is None:
        return "The API key is not valid for this tenant."
    return TenantPrincipal(tenant_id=tenant.pk, tenant_slug=tenant.slug, api_key=verified)


def _is_principal(value: TenantPrincipal | str) -> bool:
    return isinstance(value, TenantPrincipal)


def principal_from_request(request: HttpRequest) -> TenantPrincipal | None:
    result = _verify(request)
    return result if isinstance(result, TenantPrincipal) else None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = KEYWORD

    def authenticate(self, request: Request) -> tuple[TenantPrincipal, VerifiedKey] | None:
        result = _verify(request._request)
        if result is None:
            return None
        if isinstance(result, str):
            raise exceptions.AuthenticationFailed(result)
        return result, result.api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'

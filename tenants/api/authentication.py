"""``Authorization: Bearer <api key>``, verified against the current tenant's own schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tenants.db import current_schema, is_public
from tenants.workspace.selectors import VerifiedKey, api_key_verify


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


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[TenantPrincipal, VerifiedKey] | None:
        tenant: Any = getattr(request._request, "tenant", None)
        if tenant is None or is_public() or current_schema() != tenant.schema_name:
            return None  # public host: no tenant keys here
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not raw_key.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        verified = api_key_verify(raw_key=raw_key.strip())
        if verified is None:
            raise exceptions.AuthenticationFailed("The API key is not valid for this tenant.")
        return TenantPrincipal(
            tenant_id=tenant.pk, tenant_slug=tenant.slug, api_key=verified
        ), verified

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'

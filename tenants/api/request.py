"""Who a tenant API request is made by: its tenant and the API key's actor. Every app's
views use these rather than reading ``request.tenant`` / ``request.user`` themselves."""

from __future__ import annotations

from rest_framework.request import Request

from core.audit import Actor


def request_tenant_id(request: Request) -> int:
    return int(request.tenant.pk)  # type: ignore[attr-defined]


def request_actor(request: Request) -> Actor:
    return Actor("apikey", getattr(request.user, "actor_ident", ""))

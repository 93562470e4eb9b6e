"""Typed access to django-tenants' schema switching on the default connection."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django_tenants.postgresql_backend.base import FakeTenant

PUBLIC_SCHEMA = "public"  # django-tenants' default PUBLIC_SCHEMA_NAME, which we keep


def _conn() -> Any:
    return connection  # django-tenants' DatabaseWrapper: set_tenant, schema_name, ...


def request_connection() -> Any:
    """This thread's default connection itself, for code that switches it several times in
    one request (each use of ``connection`` looks it up again)."""
    return connections[DEFAULT_DB_ALIAS]


def public_use(conn: Any) -> None:
    """Switch ``conn`` (see :func:`request_connection`) to the public schema, unless it is on
    it already (as ``set_schema_to_public()``, without looking the public name up again)."""
    if conn.schema_name != PUBLIC_SCHEMA:
        conn.set_tenant(FakeTenant(schema_name=PUBLIC_SCHEMA))


def use_tenant(tenant: Any) -> None:
    _conn().set_tenant(tenant)


def use_public() -> None:
    _conn().set_schema_to_public()


def current_schema() -> str:
    return str(_conn().schema_name)


def current_tenant() -> Any:
    """The connection's tenant; on the public schema, django-tenants' public FakeTenant."""
    return _conn().tenant

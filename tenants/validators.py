"""Validation of tenant slugs, time zones and configuration."""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from typing import Any

import jsonschema
from django.core.exceptions import ValidationError

from core.money import is_currency

SLUG_MIN_LENGTH = 3
SLUG_MAX_LENGTH = 40
# A DNS label: lower-case letters, digits and single hyphens; starts with a letter and does
# not end with a hyphen.
_SLUG_RE = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*$")

RESERVED_SLUGS = frozenset(
    """
    www www1 www2 admin administrator api apis app apps public static media assets cdn stripe
    mail email smtp imap pop pop3 mx ns ns1 ns2 dns ftp sftp ssh vpn git status health healthz
    help support docs doc blog dev staging stage test tests demo-admin internal root system
    billing pay payments invoice invoices account accounts auth login logout signup register
    dashboard console portal webhook webhooks hooks tenant tenants tenantry template
    tenant-template localhost
    """.split()
)


def validate_slug(value: str) -> None:
    if not SLUG_MIN_LENGTH <= len(value) <= SLUG_MAX_LENGTH:
        raise ValidationError(
            f"Must be {SLUG_MIN_LENGTH} to {SLUG_MAX_LENGTH} characters long.", code="length"
        )
    if not _SLUG_RE.match(value):
        raise ValidationError(
            "Use lower-case letters, digits and single hyphens; start with a letter and do not "
            "end with a hyphen.",
            code="malformed",
        )
    if value in RESERVED_SLUGS:
        raise ValidationError(f"'{value}' is reserved.", code="reserved")


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in _timezones():
        raise ValidationError(f"'{value}' is not an IANA time zone.", code="invalid_timezone")


def validate_currency(value: str) -> None:
    if not is_currency(value):
        raise ValidationError(f"'{value}' is not an ISO 4217 currency.", code="invalid_currency")


TENANT_CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "locale": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"},
        "billing_email": {"type": "string", "format": "email", "maxLength": 254},
        "invoice_footer": {"type": "string", "maxLength": 500},
        "tax_rate_bps": {"type": "integer", "minimum": 0, "maximum": 10000},
        "branding": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
                "logo_url": {"type": "string", "pattern": "^https://", "maxLength": 500},
            },
        },
        "features": {"type": "object", "additionalProperties": {"type": "boolean"}},
    },
}

_config_validator = jsonschema.Draft202012Validator(TENANT_CONFIG_SCHEMA)


def validate_tenant_config(value: Any) -> None:
    errors = sorted(_config_validator.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        messages = [
            f"{'/'.join(str(p) for p in error.path) or '(root)'}: {error.message}"
            for error in errors
        ]
        raise ValidationError(messages, code="invalid_config")

"""Tenants and their domains, in the public schema.

A tenant's own rows (members, API keys, ...) live in its schema; see ``tenants.workspace``.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models.functions import Concat, Replace
from django_tenants.models import DomainMixin, TenantMixin

from core.money import CURRENCY_CHOICES
from tenants.validators import (
    validate_currency,
    validate_slug,
    validate_tenant_config,
    validate_timezone,
)


class TenantStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    FAILED = "failed", "Provisioning failed"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    CLOSED = "closed", "Closed"


# The tenant state machine: provisioning -> active <-> suspended -> closed, and a failed
# provisioning that can be retried. Closed is final.
TENANT_TRANSITIONS: dict[str, frozenset[str]] = {
    TenantStatus.PROVISIONING: frozenset(
        {TenantStatus.ACTIVE, TenantStatus.FAILED, TenantStatus.CLOSED}
    ),
    TenantStatus.FAILED: frozenset({TenantStatus.PROVISIONING, TenantStatus.CLOSED}),
    TenantStatus.ACTIVE: frozenset({TenantStatus.SUSPENDED, TenantStatus.CLOSED}),
    TenantStatus.SUSPENDED: frozenset({TenantStatus.ACTIVE, TenantStatus.CLOSED}),
    TenantStatus.CLOSED: frozenset(),
}

SCHEMA_PREFIX = "t_"


def schema_name_for(slug: str) -> str:
    """``acme-corp`` -> ``t_acme_corp`` (slugs hold no underscores, so this is one-to-one)."""
    return SCHEMA_PREFIX + slug.replace("-", "_")


class Tenant(TenantMixin):
    # Schemas are created by the provisioning task (cloning the template), not on save.
    auto_create_schema = False
    auto_drop_schema = False
    clone_mode = "DATA"

    slug = models.CharField(max_length=40, unique=True, validators=[validate_slug])
    name = models.CharField(max_length=200)
    contact_email = models.EmailField()
    status = models.CharField(
        max_length=20,
        choices=TenantStatus.choices,
        default=TenantStatus.PROVISIONING,
        db_index=True,
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    currency = models.CharField(
        max_length=3, default="USD", choices=CURRENCY_CHOICES, validators=[validate_currency]
    )
    config = models.JSONField(default=dict, blank=True, validators=[validate_tenant_config])
    signup_plan = models.CharField(
        max_length=50, blank=True, help_text="Plan code asked for at signup"
    )
    status_reason = models.TextField(blank=True)
    provisioning_error = models.TextField(blank=True)
    provisioning_attempts = models.PositiveIntegerField(default=0)
    # The first API key is made at signup, before the schema exists; its hash waits here
    # until provisioning writes it into the tenant's schema, then it is cleared.
    pending_key_prefix = models.CharField(max_length=32, blank=True)
    pending_key_hash = models.CharField(max_length=64, blank=True)
    provisioned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("slug",)
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(status__in=TenantStatus.values), name="tenant_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    schema_name=Concat(
                        models.Value(SCHEMA_PREFIX),
                        Replace("slug", models.Value("-"), models.Value("_")),
                    )
                )
                | models.Q(schema_name="public"),
                name="tenant_schema_matches_slug",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def email(self) -> str:
        return self.contact_email

    def can_transition(self, to: str) -> bool:
        return to in TENANT_TRANSITIONS[self.status]


class Domain(DomainMixin):
    """A host that routes to a tenant: its ``<slug>.<base domain>`` or a custom domain."""

    class Meta:
        ordering = ("domain",)

    def __str__(self) -> str:
        return self.domain

"""Shared-kernel tables in the public schema: the audit log and the domain-event outbox.

Both refer to a tenant by id only: the kernel imports no app.
"""

from __future__ import annotations

import uuid

from django.db import models


class AuditEntry(models.Model):
    """Who did what to which object, when and why. Append-only."""

    occurred_at = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=200, help_text="e.g. staff:alice, apikey:tnr_ab12cd34")
    action = models.CharField(max_length=100, db_index=True, help_text="e.g. tenant.suspend")
    tenant_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=100)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-occurred_at", "-id")
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action}"


class DomainEvent(models.Model):
    """The outbox: one row per domain event, written in the transaction of the change."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=100, db_index=True, help_text="e.g. TenantSuspended")
    tenant_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    payload = models.JSONField(default=dict)
    schema_version = models.PositiveSmallIntegerField(default=1)
    occurred_at = models.DateTimeField(db_index=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatch_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ("-occurred_at",)
        indexes = [
            models.Index(
                fields=["occurred_at"],
                name="domainevent_undispatched",
                condition=models.Q(dispatched_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} ({self.id})"

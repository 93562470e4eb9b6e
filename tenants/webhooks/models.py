"""Outbound webhooks, in the public schema so staff see every tenant's endpoints and deliveries.

A tenant's API only ever reads rows filtered by its own tenant id (see ``selectors``).
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q


class WebhookEndpoint(models.Model):
    """A URL of a tenant that receives its domain events, signed with ``secret``."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(
        default=list, blank=True, help_text="Event types to receive; empty means all."
    )
    # Standard Webhooks secret, ``whsec_<base64>``. Kept (not hashed) because every delivery
    # is signed with it; shown to the tenant once, at creation, and never in the admin.
    secret = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Deliveries that gave up in a row; a success resets it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Deleting through the API keeps the row (and its delivery history) for staff.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["tenant", "is_active"])]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(secret__startswith="whsec_"),  # noqa: S106  (a prefix, not a secret)
                name="webhookendpoint_secret_format",
            ),
            models.CheckConstraint(
                condition=Q(is_active=False) | Q(disabled_at__isnull=True, deleted_at__isnull=True),
                name="webhookendpoint_active_not_disabled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.url} (#{self.pk})"

    def receives(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # not attempted yet (or queued again by a retry)
    FAILED = "failed", "Failed, will retry"
    SUCCEEDED = "succeeded", "Succeeded"
    GAVE_UP = "gave_up", "Gave up"


OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)


class WebhookDelivery(models.Model):
    """One event to one endpoint: sent until it succeeds or its retries run out."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(
        "core.DomainEvent", on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    # The ``webhook-id`` header: derived from (event, endpoint), the same on every retry and
    # replay, so receivers can drop duplicates.
    webhook_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_response_body = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Set when the delivery first gives up and adds 1 to the endpoint's consecutive_failures;
    # giving up again after a retry or replay does not count again.
    gave_up_counted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhookdelivery_due",
                condition=Q(status__in=OPEN_STATUSES),
            ),
            models.Index(fields=["endpoint", "-created_at"]),
        ]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["endpoint", "event"], name="webhookdelivery_once_per_endpoint"
            ),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="webhookdelivery_status_valid"
            ),
            # Open deliveries always have a due time; finished ones never do.
            models.CheckConstraint(
                condition=Q(status__in=OPEN_STATUSES, next_attempt_at__isnull=False)
                | (~Q(status__in=OPEN_STATUSES) & Q(next_attempt_at__isnull=True)),
                name="webhookdelivery_open_has_due_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} -> endpoint #{self.endpoint_id} ({self.status})"

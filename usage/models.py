"""Usage: ingested events, durable daily totals, flush bookkeeping and quota notices.

All in the public schema, keyed by tenant id. Totals are bucketed by UTC day *and* by the
subscription period the usage belongs to, since periods start at each subscription's own
anchor time, not at midnight.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q


class UsageEvent(models.Model):
    """A custom usage event accepted by the ingestion API; its id counts once per tenant."""

    # Indexes: only the primary key and the unique (tenant, event id) one, which also serves
    # lookups by tenant (and the foreign key's checks). Each index costs work on every
    # inserted row, and nothing reads events by metric or period: totals are UsageRecord.
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    event_id = models.CharField(max_length=100)
    metric = models.SlugField(max_length=50, db_index=False)
    quantity = models.BigIntegerField()
    timestamp = models.DateTimeField()
    period_start = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["tenant", "event_id"], name="usageevent_once_per_tenant"
            ),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="usageevent_quantity_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.metric}={self.quantity}"


class UsageRecord(models.Model):
    """A durable total: ``quantity`` of ``metric`` on ``day`` within the period that starts
    at ``period_start``. Counters add up; the storage gauge keeps the day's maximum."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    metric = models.SlugField(max_length=50)
    day = models.DateField()
    period_start = models.DateTimeField()
    quantity = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-day", "metric")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["tenant", "metric", "day", "period_start"], name="usagerecord_unique_bucket"
            ),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="usagerecord_quantity_gte_0"),
        ]
        indexes: ClassVar = [models.Index(fields=["tenant", "period_start", "metric"])]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.metric} {self.day}: {self.quantity}"


class UsageFlush(models.Model):
    """One move of Redis counters into UsageRecord. Its unique id makes applying it twice
    impossible: a flush interrupted after commit is recognised and only cleaned up."""

    flush_id = models.CharField(max_length=64, unique=True)
    applied_at = models.DateTimeField()
    buckets = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.flush_id


class QuotaNotice(models.Model):
    """That a tenant crossed 80 % or 100 % of a quota in a period: the event is sent once."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    metric = models.SlugField(max_length=50)
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField(help_text="percent: 80 or 100")
    used = models.BigIntegerField()
    limit = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["tenant", "metric", "period_start", "threshold"], name="quotanotice_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.metric} {self.threshold}%"

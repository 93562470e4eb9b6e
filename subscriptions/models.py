"""The plan catalog and every tenant's subscription, in the public schema.

A ``Plan`` is the stable product (``free``, ``pro``); what it costs and allows lives in
immutable ``PlanVersion`` rows, so changing a price or a quota makes a new version and
existing subscriptions keep theirs until they renew (grandfathering is the plan's choice).
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q

from core.money import CURRENCY_CHOICES


class Interval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class Grandfathering(models.TextChoices):
    KEEP = "keep", "Keep their version"
    MOVE_AT_RENEWAL = "move_at_renewal", "Move to the current version at renewal"


class Plan(models.Model):
    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    is_public = models.BooleanField(default=True)
    grandfathering = models.CharField(
        max_length=20, choices=Grandfathering.choices, default=Grandfathering.KEEP
    )
    requires_payment_method = models.BooleanField(
        default=False, help_text="A trial converts to active only with a payment method on file."
    )
    sort_order = models.PositiveIntegerField(default=0)
    current_version = models.ForeignKey(
        "PlanVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("sort_order", "code")

    def __str__(self) -> str:
        return self.code


class PlanVersion(models.Model):
    """What a plan costs and allows, frozen: a change makes a new version."""

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    interval = models.CharField(max_length=5, choices=Interval.choices)
    price_amount = models.BigIntegerField(help_text="Minor units, e.g. cents")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    trial_days = models.PositiveIntegerField(default=0)
    features = models.JSONField(default=list, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    stripe_price_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("plan", "-version")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["plan", "version"], name="planversion_unique"),
            models.CheckConstraint(
                condition=Q(price_amount__gte=0), name="planversion_price_gte_0"
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="planversion_version_gte_1"),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code} v{self.version}"


class Quota(models.Model):
    """A plan version's allowance of one metric, with its overage price if it has one.

    ``limit`` null means unlimited. With no overage price the limit is hard (requests over it
    are refused); with one, usage over the limit is billed at ``overage_unit_price`` minor
    units per ``overage_unit_size`` units (e.g. 1 cent per 1,000 calls).
    """

    plan_version = models.ForeignKey(PlanVersion, on_delete=models.CASCADE, related_name="quotas")
    metric = models.SlugField(max_length=50)
    limit = models.BigIntegerField(null=True, blank=True)
    overage_unit_price = models.BigIntegerField(null=True, blank=True)
    overage_unit_size = models.BigIntegerField(default=1)

    class Meta:
        ordering = ("plan_version", "metric")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["plan_version", "metric"], name="quota_unique_metric"),
            models.CheckConstraint(
                condition=Q(limit__isnull=True) | Q(limit__gte=0), name="quota_limit_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(overage_unit_price__isnull=True) | Q(overage_unit_price__gte=0),
                name="quota_overage_price_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(overage_unit_size__gte=1), name="quota_unit_size_gte_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric}: {'unlimited' if self.limit is None else self.limit}"


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


CURRENT_STATUSES = (
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
)


class Subscription(models.Model):
    """A tenant's subscription. Periods follow ``billing_anchor`` (see ``periods.py``)."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="subscriptions"
    )
    plan_version = models.ForeignKey(
        PlanVersion, on_delete=models.PROTECT, related_name="subscriptions"
    )
    status = models.CharField(max_length=20, choices=SubscriptionStatus.choices, db_index=True)
    billing_anchor = models.DateTimeField()
    # Periods since the anchor: the current period is [anchor + n, anchor + n + 1) intervals.
    anchor_periods = models.PositiveIntegerField(default=0)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField(db_index=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    past_due_since = models.DateTimeField(null=True, blank=True)
    scheduled_plan_version = models.ForeignKey(
        PlanVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="A downgrade that applies at the end of the current period",
    )
    has_payment_method = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        constraints: ClassVar = [
            # One current subscription per tenant.
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(status__in=CURRENT_STATUSES),
                name="subscription_one_current_per_tenant",
            ),
            models.CheckConstraint(
                condition=Q(current_period_end__gt=models.F("current_period_start")),
                name="subscription_period_positive",
            ),
            models.CheckConstraint(
                condition=Q(status__in=SubscriptionStatus.values), name="subscription_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=SubscriptionStatus.TRIALING) | Q(trial_end__isnull=False),
                name="subscription_trialing_has_trial_end",
            ),
            models.CheckConstraint(
                condition=~Q(status=SubscriptionStatus.PAST_DUE) | Q(past_due_since__isnull=False),
                name="subscription_past_due_has_since",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.plan_version} ({self.status})"

    @property
    def is_current(self) -> bool:
        return self.status in CURRENT_STATUSES


class SubscriptionPeriod(models.Model):
    """Each period a subscription has had: the unit that billing invoices exactly once."""

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="periods")
    number = models.PositiveIntegerField(help_text="1, 2, 3... in order, per subscription")
    start = models.DateTimeField()
    end = models.DateTimeField()
    plan_version = models.ForeignKey(PlanVersion, on_delete=models.PROTECT, related_name="+")
    is_trial = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("subscription", "number")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["subscription", "number"], name="period_unique_number"),
            models.UniqueConstraint(fields=["subscription", "start"], name="period_unique_start"),
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="period_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id} #{self.number} {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"


class PendingItemKind(models.TextChoices):
    PRORATION_CREDIT = "proration_credit", "Proration credit"
    PRORATION_CHARGE = "proration_charge", "Proration charge"


class PendingInvoiceItem(models.Model):
    """An amount a plan change billed now, waiting for billing to put it on an invoice."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="pending_items"
    )
    kind = models.CharField(max_length=30, choices=PendingItemKind.choices)
    description = models.CharField(max_length=300)
    amount = models.BigIntegerField(help_text="Minor units; negative for a credit")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    plan_version = models.ForeignKey(PlanVersion, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    invoiced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("subscription", "created_at", "id")
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=(Q(kind=PendingItemKind.PRORATION_CREDIT) & Q(amount__lte=0))
                | (Q(kind=PendingItemKind.PRORATION_CHARGE) & Q(amount__gte=0)),
                name="pendingitem_sign_matches_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"

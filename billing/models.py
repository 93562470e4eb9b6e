"""Invoices, their lines and numbers, payments and credit notes (public schema).

Money is an integer of minor units plus the invoice's ISO currency throughout.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q

from core.money import CURRENCY_CHOICES


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"


class Invoice(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        "subscriptions.Subscription",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="invoices",
    )
    period = models.OneToOneField(
        "subscriptions.SubscriptionPeriod",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="invoice",
        help_text="The subscription period this invoice bills; one invoice per period.",
    )
    number = models.CharField(max_length=32, unique=True, null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT, db_index=True
    )
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    subtotal = models.BigIntegerField(default=0)
    tax_rate_bps = models.PositiveIntegerField(default=0, help_text="basis points: 1975 = 19.75 %")
    tax = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    amount_paid = models.BigIntegerField(default=0)
    amount_due = models.BigIntegerField(default=0)
    due_at = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.TextField(blank=True)
    # Dunning
    payment_attempts = models.PositiveIntegerField(default=0)
    first_failed_at = models.DateTimeField(null=True, blank=True)
    next_payment_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(status__in=InvoiceStatus.values), name="invoice_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=InvoiceStatus.DRAFT) | Q(number__isnull=False),
                name="invoice_numbered_once_final",
            ),
            models.CheckConstraint(
                condition=Q(total=models.F("subtotal") + models.F("tax")), name="invoice_total_sums"
            ),
            models.CheckConstraint(
                condition=Q(amount_due__gte=0) & Q(amount_paid__gte=0), name="invoice_amounts_gte_0"
            ),
        ]
        indexes: ClassVar = [models.Index(fields=["tenant", "status"])]

    def __str__(self) -> str:
        return self.number or f"draft #{self.pk}"


class LineKind(models.TextChoices):
    BASE_FEE = "base_fee", "Base fee"
    PRORATION_CREDIT = "proration_credit", "Proration credit"
    PRORATION_CHARGE = "proration_charge", "Proration charge"
    OVERAGE = "overage", "Overage"
    ADJUSTMENT = "adjustment", "Adjustment"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=30, choices=LineKind.choices)
    description = models.CharField(max_length=300)
    metric = models.CharField(max_length=50, blank=True)
    quantity = models.BigIntegerField(default=1)
    unit_amount = models.BigIntegerField(default=0, help_text="minor units per unit_size units")
    unit_size = models.BigIntegerField(default=1)
    amount = models.BigIntegerField(help_text="minor units, rounded once (half-up)")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    pending_item = models.OneToOneField(
        "subscriptions.PendingInvoiceItem",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="invoice_line",
    )

    class Meta:
        ordering = ("invoice", "id")

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"


class InvoiceNumberSequence(models.Model):
    """The last number used per year; locked while a number is taken, so numbers are gapless."""

    year = models.PositiveIntegerField(primary_key=True)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_number}"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Payment(models.Model):
    """One attempt to collect an invoice through a gateway."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    attempt = models.PositiveIntegerField()
    gateway = models.CharField(max_length=20)
    idempotency_key = models.CharField(max_length=100, unique=True)
    external_id = models.CharField(max_length=100, blank=True, db_index=True)
    status = models.CharField(
        max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PENDING
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["invoice", "attempt"], name="payment_one_per_attempt"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice} attempt {self.attempt}: {self.status}"


class CreditNote(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=40, unique=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    reason = models.TextField()
    refund_external_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="creditnote_amount_gt_0")
        ]

    def __str__(self) -> str:
        return self.number

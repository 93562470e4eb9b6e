"""Staff views of invoices (actions ask for a reason), payments and credit notes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from billing import services
from billing.models import CreditNote, Invoice, InvoiceLine, Payment
from core.admin_actions import ReasonForm, form_action
from core.audit import Actor


class CreditForm(ReasonForm):
    amount = forms.IntegerField(
        min_value=1, help_text="minor units; empty = everything not yet credited", required=False
    )


def _form_action(*, name: str, label: str, form_class: type[forms.Form] | None, apply: Any) -> Any:
    return form_action(
        name=name, label=label, form_class=form_class, apply=apply, noun="invoice", describe=str
    )


def _credit(invoice: Invoice, data: dict[str, Any], actor: Actor) -> Any:
    available = invoice.amount_paid - sum(invoice.credit_notes.values_list("amount", flat=True))
    return services.credit_note_issue(
        invoice_id=invoice.pk,
        amount=data.get("amount") or available,
        reason=data["reason"],
        actor=actor,
    )


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ("kind", "description", "quantity", "unit_amount", "unit_size", "amount")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0
    can_delete = False
    fields = ("attempt", "gateway", "status", "amount", "external_id", "failure_code", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "tenant",
        "status",
        "total",
        "amount_due",
        "currency",
        "period_start",
        "due_at",
        "payment_attempts",
        "next_payment_attempt_at",
    )
    list_filter = ("status", "currency", "period_start", "tenant")
    search_fields = ("number", "tenant__slug")
    list_select_related = ("tenant",)
    date_hierarchy = "period_start"
    inlines = (InvoiceLineInline, PaymentInline)
    actions = (
        _form_action(
            name="finalize",
            label="Finalize",
            form_class=None,
            apply=lambda i, d, a: services.invoice_finalize(invoice_id=i.pk, actor=a),
        ),
        _form_action(
            name="void",
            label="Void",
            form_class=ReasonForm,
            apply=lambda i, d, a: services.invoice_void(
                invoice_id=i.pk, actor=a, reason=d["reason"]
            ),
        ),
        _form_action(
            name="mark_paid",
            label="Mark paid (bank transfer)",
            form_class=ReasonForm,
            apply=lambda i, d, a: services.invoice_mark_paid(
                invoice_id=i.pk, actor=a, reason=d["reason"]
            ),
        ),
        _form_action(
            name="retry_payment",
            label="Retry payment now",
            form_class=None,
            apply=lambda i, d, a: services.invoice_pay(invoice_id=i.pk, actor=a),
        ),
        _form_action(
            name="credit_note",
            label="Issue a credit note (refunds)",
            form_class=CreditForm,
            apply=_credit,
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Invoice._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "invoice",
        "attempt",
        "gateway",
        "status",
        "amount",
        "currency",
        "external_id",
        "created_at",
    )
    list_filter = ("status", "gateway")
    search_fields = ("invoice__number", "external_id", "idempotency_key")


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdmin):
    list_display = (
        "number",
        "invoice",
        "amount",
        "currency",
        "reason",
        "refund_external_id",
        "created_at",
    )
    search_fields = ("number", "invoice__number")

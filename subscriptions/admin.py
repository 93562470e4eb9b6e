"""Staff views of plans (versions read-only) and subscriptions (actions ask for a reason)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from core.admin_actions import ReasonForm, form_action
from core.audit import Actor
from subscriptions import services
from subscriptions.models import Plan, PlanVersion, Quota, Subscription


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class QuotaInline(ReadOnlyInline):
    model = Quota
    fields = ("metric", "limit", "overage_unit_price", "overage_unit_size")
    readonly_fields = fields
    show_change_link = False


class PlanVersionInline(ReadOnlyInline):
    model = PlanVersion
    fk_name = "plan"
    fields = (
        "version",
        "interval",
        "price_amount",
        "currency",
        "trial_days",
        "rate_limit_per_minute",
        "quota_summary",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="Quotas")
    def quota_summary(self, version: PlanVersion) -> str:
        return ", ".join(str(q) for q in version.quotas.all()) or "—"


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "is_public",
        "current_version",
        "grandfathering",
        "requires_payment_method",
    )
    list_filter = ("is_public", "grandfathering")
    search_fields = ("code", "name")
    readonly_fields = ("code", "current_version", "created_at", "updated_at")
    inlines = (PlanVersionInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the catalog is code: manage.py sync_plans

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PlanVersion)
class PlanVersionAdmin(admin.ModelAdmin):
    list_display = (
        "plan",
        "version",
        "interval",
        "price_amount",
        "currency",
        "trial_days",
        "created_at",
    )
    list_filter = ("plan", "interval", "currency")
    inlines = (QuotaInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ChangePlanForm(ReasonForm):
    plan = forms.ModelChoiceField(
        queryset=Plan.objects.filter(current_version__isnull=False), to_field_name="code"
    )


class CancelForm(ReasonForm):
    at_period_end = forms.BooleanField(
        required=False, initial=True, label="At the period end (else now)"
    )


class ExtendTrialForm(ReasonForm):
    days = forms.IntegerField(min_value=1, max_value=365)


def _form_action(*, name: str, label: str, form_class: type[forms.Form], apply: Any) -> Any:
    return form_action(
        name=name,
        label=label,
        form_class=form_class,
        apply=apply,
        noun="subscription",
        describe=lambda sub: f"subscription {sub.pk}",
    )


def _change(sub: Subscription, data: dict[str, Any], actor: Actor) -> Any:
    return services.subscription_change(
        tenant_id=sub.tenant_id, plan_code=data["plan"].code, actor=actor, reason=data["reason"]
    )


def _cancel(sub: Subscription, data: dict[str, Any], actor: Actor) -> Any:
    return services.subscription_cancel(
        tenant_id=sub.tenant_id,
        at_period_end=data["at_period_end"],
        actor=actor,
        reason=data["reason"],
    )


def _resume(sub: Subscription, data: dict[str, Any], actor: Actor) -> Any:
    return services.subscription_resume(tenant_id=sub.tenant_id, actor=actor, reason=data["reason"])


def _extend(sub: Subscription, data: dict[str, Any], actor: Actor) -> Any:
    return services.subscription_extend_trial(
        subscription_id=sub.pk, days=data["days"], actor=actor, reason=data["reason"]
    )


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "tenant",
        "plan_version",
        "status",
        "current_period_start",
        "current_period_end",
        "trial_end",
        "cancel_at_period_end",
        "scheduled_plan_version",
    )
    list_filter = ("status", "plan_version__plan", "cancel_at_period_end")
    search_fields = ("tenant__slug", "tenant__name")
    list_select_related = ("tenant", "plan_version__plan", "scheduled_plan_version__plan")
    actions = (
        _form_action(
            name="change_plan", label="Change plan", form_class=ChangePlanForm, apply=_change
        ),
        _form_action(name="cancel", label="Cancel", form_class=CancelForm, apply=_cancel),
        _form_action(name="resume", label="Resume", form_class=ReasonForm, apply=_resume),
        _form_action(
            name="extend_trial", label="Extend trial", form_class=ExtendTrialForm, apply=_extend
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Subscription._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

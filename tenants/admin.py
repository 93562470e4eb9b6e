"""The staff back-office for tenants: search, filters, domains inline, status actions.

Status changes go through the services (with a reason asked for on an intermediate page),
never through the change form, so each one is audited and emits its domain event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest

from core.admin_actions import form_action, staff_actor
from tenants import services
from tenants.models import Domain, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    fields = ("domain", "is_primary")


def _tenant_action(*, name: str, label: str, service: Callable[..., Any]) -> Any:
    return form_action(
        name=name,
        label=label,
        noun="tenant",
        describe=lambda tenant: tenant.slug,
        apply=lambda tenant, data, actor: service(
            tenant_id=tenant.pk, actor=actor, reason=data["reason"]
        ),
    )


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "status", "contact_email", "primary_domain", "created_at")
    list_filter = ("status", "currency", "created_at")
    search_fields = ("slug", "name", "contact_email", "domains__domain")
    readonly_fields = (
        "schema_name",
        "status",
        "status_reason",
        "provisioning_error",
        "provisioning_attempts",
        "provisioned_at",
        "created_at",
        "updated_at",
        "signup_plan",
    )
    exclude = ("pending_key_prefix", "pending_key_hash")
    inlines = (DomainInline,)
    actions = (
        _tenant_action(name="suspend", label="Suspend", service=services.tenant_suspend),
        _tenant_action(name="activate", label="Activate", service=services.tenant_activate),
        _tenant_action(name="close", label="Close", service=services.tenant_close),
        _tenant_action(
            name="retry_provisioning",
            label="Retry provisioning",
            service=services.tenant_provisioning_retry,
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).prefetch_related("domains")

    @admin.display(description="Primary domain")
    def primary_domain(self, tenant: Tenant) -> str:
        return next((d.domain for d in tenant.domains.all() if d.is_primary), "")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tenants are created by signup (or the API), which provisions them

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # close a tenant instead

    def save_formset(
        self, request: HttpRequest, form: Any, formset: BaseInlineFormSet, change: bool
    ) -> None:
        former = [str(f.initial["domain"]) for f in formset.forms if f.initial.get("domain")]
        super().save_formset(request, form, formset, change)
        if formset.has_changed():
            tenant_id = form.instance.pk
            services.tenant_domains_changed(
                tenant_id=tenant_id, actor=staff_actor(request), former_hosts=former
            )

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            services.tenant_updated(
                tenant_id=obj.pk, actor=staff_actor(request), fields=list(form.changed_data)
            )

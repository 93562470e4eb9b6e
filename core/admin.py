"""Read-only staff views of the audit log and the domain-event outbox."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.models import AuditEntry, DomainEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "occurred_at",
        "actor",
        "action",
        "tenant_id",
        "target_type",
        "target_id",
        "reason",
    )
    list_filter = ("action", "target_type")
    search_fields = ("actor", "action", "target_id", "reason")
    date_hierarchy = "occurred_at"


@admin.register(DomainEvent)
class DomainEventAdmin(ReadOnlyAdmin):
    list_display = (
        "occurred_at",
        "type",
        "tenant_id",
        "schema_version",
        "dispatched_at",
        "dispatch_attempts",
    )
    list_filter = ("type", ("dispatched_at", admin.EmptyFieldListFilter))
    search_fields = ("type", "id")
    date_hierarchy = "occurred_at"

"""Staff views of every tenant's webhook endpoints and deliveries.

Endpoints: filter by tenant and state, see which were disabled and why, re-enable. Secrets
are never shown. Deliveries: read-only, filter by status, replay (send again now with the
same ``webhook-id``). Every change goes through a service, so it is audited.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from core.errors import ApplicationError
from tenants.admin import staff_actor
from tenants.webhooks.models import WebhookDelivery, WebhookEndpoint
from tenants.webhooks.services import webhook_delivery_replay, webhook_endpoint_enable


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "tenant",
        "url",
        "is_active",
        "disabled",
        "consecutive_failures",
        "deliveries_link",
        "created_at",
        "deleted_at",
    )
    list_filter = (
        "is_active",
        ("disabled_at", admin.EmptyFieldListFilter),
        ("deleted_at", admin.EmptyFieldListFilter),
        "tenant",
    )
    search_fields = ("url", "description", "tenant__slug")
    list_select_related = ("tenant",)
    exclude = ("secret",)
    readonly_fields = (
        "tenant",
        "url",
        "event_types",
        "is_active",
        "disabled_at",
        "disabled_reason",
        "consecutive_failures",
        "created_at",
        "updated_at",
        "deleted_at",
    )
    actions = ("enable",)

    @admin.display(boolean=True, description="Disabled after failures")
    def disabled(self, endpoint: WebhookEndpoint) -> bool:
        return endpoint.disabled_at is not None

    @admin.display(description="Deliveries")
    def deliveries_link(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:webhooks_webhookdelivery_changelist")
        return format_html('<a href="{}?endpoint__id__exact={}">deliveries</a>', url, endpoint.pk)

    @admin.action(description="Re-enable selected endpoints")
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        done = 0
        for endpoint in queryset:
            try:
                webhook_endpoint_enable(
                    endpoint_id=endpoint.pk, actor=staff_actor(request), reason="admin"
                )
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"#{endpoint.pk}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Re-enabled {done} endpoint(s).", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tenants register endpoints through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # tenants delete through the API; the history stays


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "webhook_id",
        "tenant",
        "endpoint",
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    )
    list_filter = ("status", "endpoint__tenant", "event__type")
    search_fields = ("webhook_id", "event__id", "endpoint__url", "endpoint__tenant__slug")
    list_select_related = ("endpoint__tenant", "event")
    date_hierarchy = "created_at"
    actions = ("replay",)

    @admin.display(description="Tenant", ordering="endpoint__tenant__slug")
    def tenant(self, delivery: WebhookDelivery) -> str:
        return str(delivery.endpoint.tenant)

    @admin.display(description="Event type", ordering="event__type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    @admin.action(description="Replay selected deliveries (send again now, same webhook-id)")
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        done = 0
        for delivery in queryset:
            try:
                webhook_delivery_replay(delivery_id=delivery.pk, actor=staff_actor(request))
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{delivery.webhook_id}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Replaying {done} delivery(ies).", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

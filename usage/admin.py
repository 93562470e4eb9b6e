"""Staff views of usage: totals per tenant and metric, events, notices, top consumers."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import F, OuterRef, Subquery, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from subscriptions.models import CURRENT_STATUSES, Subscription
from tenants.models import Tenant
from usage.metrics import API_CALLS, BANDWIDTH_BYTES
from usage.models import QuotaNotice, UsageEvent, UsageFlush, UsageRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def top_consumers(metric: str, limit: int = 20) -> list[dict[str, Any]]:
    """Tenants using the most of ``metric`` in their own current period."""
    current_start = Subscription.objects.filter(
        tenant=OuterRef("tenant"), status__in=CURRENT_STATUSES
    ).values("current_period_start")[:1]
    rows = (
        UsageRecord.objects.filter(metric=metric)
        .annotate(current=Subquery(current_start))
        .exclude(current__isnull=True)
        .filter(period_start=F("current"))
        .values("tenant")
        .annotate(total=Sum("quantity"))
        .order_by("-total")[:limit]
    )
    slugs = dict(
        Tenant.objects.filter(pk__in=[r["tenant"] for r in rows]).values_list("pk", "slug")
    )
    return [{"tenant": slugs.get(r["tenant"], r["tenant"]), "total": r["total"]} for r in rows]


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ("tenant", "metric", "day", "period_start", "quantity", "updated_at")
    list_filter = ("metric", "day")
    search_fields = ("tenant__slug",)
    list_select_related = ("tenant",)
    date_hierarchy = "day"
    change_list_template = "admin/usage/usagerecord/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path("top/", self.admin_site.admin_view(self.top_view), name="usage_usagerecord_top"),
            *super().get_urls(),
        ]

    def top_view(self, request: HttpRequest) -> HttpResponse:
        tables = [(metric, top_consumers(metric)) for metric in (API_CALLS, BANDWIDTH_BYTES)]
        custom = sorted(
            set(UsageRecord.objects.order_by().values_list("metric", flat=True).distinct())
            - {API_CALLS, BANDWIDTH_BYTES, "storage_bytes"}
        )
        tables += [(metric, top_consumers(metric)) for metric in custom]
        return TemplateResponse(
            request,
            "admin/usage/top_consumers.html",
            {
                **self.admin_site.each_context(request),
                "title": "Top consumers this period",
                "tables": tables,
                "opts": self.model._meta,
            },
        )


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ("tenant", "event_id", "metric", "quantity", "timestamp", "received_at")
    list_filter = ("metric",)
    search_fields = ("tenant__slug", "event_id")
    list_select_related = ("tenant",)


@admin.register(QuotaNotice)
class QuotaNoticeAdmin(ReadOnlyAdmin):
    list_display = ("tenant", "metric", "threshold", "used", "limit", "period_start", "created_at")
    list_filter = ("metric", "threshold")
    list_select_related = ("tenant",)


@admin.register(UsageFlush)
class UsageFlushAdmin(ReadOnlyAdmin):
    list_display = ("flush_id", "applied_at", "buckets")

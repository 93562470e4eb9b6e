"""Reads of plans and subscriptions."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from core.errors import NotFound
from subscriptions.models import CURRENT_STATUSES, Plan, PlanVersion, Quota, Subscription


def plan_list_public() -> QuerySet[Plan]:
    return (
        Plan.objects.filter(is_public=True, current_version__isnull=False)
        .select_related("current_version")
        .prefetch_related(
            Prefetch("current_version__quotas", queryset=Quota.objects.order_by("metric"))
        )
    )


def subscription_for_tenant(*, tenant_id: int) -> Subscription:
    """The tenant's current subscription, or its latest one when none is current."""
    base = Subscription.objects.select_related(
        "plan_version__plan", "scheduled_plan_version__plan"
    ).prefetch_related("plan_version__quotas")
    sub = base.filter(tenant_id=tenant_id, status__in=CURRENT_STATUSES).first()
    sub = sub or base.filter(tenant_id=tenant_id).order_by("-created_at", "-id").first()
    if sub is None:
        raise NotFound("The tenant has no subscription.", code="subscription_not_found")
    return sub


def plan_version_limits(version: PlanVersion) -> dict[str, dict[str, int | None]]:
    return {
        q.metric: {
            "limit": q.limit,
            "overage_unit_price": q.overage_unit_price,
            "overage_unit_size": q.overage_unit_size,
        }
        for q in version.quotas.all()
    }

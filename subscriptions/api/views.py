"""Thin views: validate, call one service or selector, serialize."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from subscriptions.api.serializers import (
    CancelInputSerializer,
    ChangePreviewSerializer,
    PlanChoiceSerializer,
    PlanVersionSerializer,
    SubscriptionSerializer,
)
from subscriptions.models import Subscription
from subscriptions.selectors import plan_list_public, subscription_for_tenant
from subscriptions.services import (
    ChangePreview,
    subscription_cancel,
    subscription_change,
    subscription_change_preview,
    subscription_resume,
)
from tenants.api.request import request_actor, request_tenant_id


def subscription_body(sub: Subscription) -> dict[str, Any]:
    scheduled = None
    if sub.scheduled_plan_version is not None:
        scheduled = {
            "plan": sub.scheduled_plan_version.plan.code,
            "effective_at": sub.current_period_end,
        }
    return SubscriptionSerializer(
        {
            "id": sub.pk,
            "status": sub.status,
            "plan": PlanVersionSerializer.of(sub.plan_version),
            "billing_anchor": sub.billing_anchor,
            "current_period_start": sub.current_period_start,
            "current_period_end": sub.current_period_end,
            "trial_end": sub.trial_end,
            "cancel_at_period_end": sub.cancel_at_period_end,
            "cancelled_at": sub.cancelled_at,
            "ended_at": sub.ended_at,
            "past_due_since": sub.past_due_since,
            "scheduled_change": scheduled,
        }
    ).data


def preview_body(preview: ChangePreview) -> dict[str, Any]:
    return ChangePreviewSerializer(
        {
            "kind": str(preview.kind),
            "plan": preview.plan,
            "effective_at": preview.effective_at,
            "currency": preview.currency,
            "total": preview.total,
            "lines": [line.__dict__ for line in preview.lines],
        }
    ).data


class PlanListView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses=PlanVersionSerializer(many=True), tags=["public"], summary="Public plans"
    )
    def get(self, request: Request) -> Response:
        versions = [p.current_version for p in plan_list_public() if p.current_version is not None]
        return Response([PlanVersionSerializer.of(v) for v in versions])


class SubscriptionView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        responses=SubscriptionSerializer, tags=["subscription"], summary="The tenant's subscription"
    )
    def get(self, request: Request) -> Response:
        return Response(
            subscription_body(subscription_for_tenant(tenant_id=request_tenant_id(request)))
        )


class SubscriptionPreviewChangeView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        request=PlanChoiceSerializer,
        responses=ChangePreviewSerializer,
        tags=["subscription"],
        summary="What changing plan would bill now (writes nothing)",
    )
    def post(self, request: Request) -> Response:
        data = PlanChoiceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        preview = subscription_change_preview(
            tenant_id=request_tenant_id(request), plan_code=data.validated_data["plan"]
        )
        return Response(preview_body(preview))


class SubscriptionChangeView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        request=PlanChoiceSerializer,
        responses=SubscriptionSerializer,
        tags=["subscription"],
        summary="Change plan: upgrades now with proration, downgrades at the period end",
    )
    def post(self, request: Request) -> Response:
        data = PlanChoiceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = subscription_change(
            tenant_id=request_tenant_id(request),
            plan_code=data.validated_data["plan"],
            actor=request_actor(request),
        )
        body = subscription_body(result.subscription)
        body["change"] = preview_body(result.preview)
        return Response(body)


class SubscriptionCancelView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        request=CancelInputSerializer,
        responses=SubscriptionSerializer,
        tags=["subscription"],
        summary="Cancel at the period end (default) or now",
    )
    def post(self, request: Request) -> Response:
        data = CancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sub = subscription_cancel(
            tenant_id=request_tenant_id(request),
            at_period_end=data.validated_data["at_period_end"],
            actor=request_actor(request),
        )
        return Response(subscription_body(sub))


class SubscriptionResumeView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        request=None,
        responses=SubscriptionSerializer,
        tags=["subscription"],
        summary="Undo a cancellation before the period ends",
    )
    def post(self, request: Request) -> Response:
        return Response(
            subscription_body(
                subscription_resume(
                    tenant_id=request_tenant_id(request), actor=request_actor(request)
                )
            )
        )

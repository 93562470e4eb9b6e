from __future__ import annotations

from typing import Any

from rest_framework import serializers

from subscriptions.models import PlanVersion


class MoneySerializer(serializers.Serializer):
    amount = serializers.IntegerField(help_text="minor units")
    currency = serializers.CharField()


class QuotaSerializer(serializers.Serializer):
    metric = serializers.CharField()
    limit = serializers.IntegerField(allow_null=True, help_text="null = unlimited")
    overage_unit_price = serializers.IntegerField(allow_null=True, help_text="null = hard limit")
    overage_unit_size = serializers.IntegerField()


def _version_fields(version: PlanVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "interval": version.interval,
        "price": {"amount": version.price_amount, "currency": version.currency},
        "trial_days": version.trial_days,
        "features": version.features,
        "rate_limit_per_minute": version.rate_limit_per_minute,
        "quotas": [
            {
                "metric": q.metric,
                "limit": q.limit,
                "overage_unit_price": q.overage_unit_price,
                "overage_unit_size": q.overage_unit_size,
            }
            for q in version.quotas.all()
        ],
    }


class PlanVersionSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    version = serializers.IntegerField()
    interval = serializers.CharField()
    price = MoneySerializer()
    trial_days = serializers.IntegerField()
    features = serializers.ListField(child=serializers.CharField())
    rate_limit_per_minute = serializers.IntegerField(allow_null=True)
    quotas = QuotaSerializer(many=True)

    @staticmethod
    def of(version: PlanVersion) -> dict[str, Any]:
        plan = version.plan
        return {
            "code": plan.code,
            "name": plan.name,
            "description": plan.description,
            **_version_fields(version),
        }


class ScheduledChangeSerializer(serializers.Serializer):
    plan = serializers.CharField()
    effective_at = serializers.DateTimeField()


class SubscriptionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    plan = PlanVersionSerializer()
    billing_anchor = serializers.DateTimeField()
    current_period_start = serializers.DateTimeField()
    current_period_end = serializers.DateTimeField()
    trial_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    cancelled_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    past_due_since = serializers.DateTimeField(allow_null=True)
    scheduled_change = ScheduledChangeSerializer(allow_null=True)


class PlanChoiceSerializer(serializers.Serializer):
    plan = serializers.SlugField(max_length=50)


class CancelInputSerializer(serializers.Serializer):
    at_period_end = serializers.BooleanField(default=True)


class PreviewLineSerializer(serializers.Serializer):
    kind = serializers.CharField()
    description = serializers.CharField()
    amount = serializers.IntegerField(help_text="minor units; negative for a credit")
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()


class ChangePreviewSerializer(serializers.Serializer):
    kind = serializers.CharField(
        help_text="upgrade, downgrade, interval_change, trial_change, cancel_scheduled, restart"
    )
    plan = serializers.CharField()
    effective_at = serializers.DateTimeField()
    currency = serializers.CharField()
    lines = PreviewLineSerializer(many=True)
    total = serializers.IntegerField(help_text="billed now, minor units")

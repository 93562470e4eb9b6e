from __future__ import annotations

from rest_framework import serializers

from tenants.webhooks.catalog import WEBHOOK_EVENT_TYPES
from tenants.webhooks.models import WebhookDelivery, WebhookEndpoint


class WebhookEndpointCreateInputSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        default=list,
        max_length=len(WEBHOOK_EVENT_TYPES),
        help_text="Event types to receive; empty or left out means all. Known types: "
        + ", ".join(WEBHOOK_EVENT_TYPES),
    )
    description = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )


class WebhookEndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields: tuple[str, ...] = (
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "disabled_at",
            "disabled_reason",
            "consecutive_failures",
            "created_at",
        )
        read_only_fields: tuple[str, ...] = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        help_text="The Standard Webhooks signing secret (whsec_...). Shown once; store it now."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields: tuple[str, ...] = (*WebhookEndpointSerializer.Meta.fields, "secret")
        read_only_fields: tuple[str, ...] = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="event.id", read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields: tuple[str, ...] = (
            "id",
            "webhook_id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "last_response_body",
            "delivered_at",
            "created_at",
        )
        read_only_fields: tuple[str, ...] = fields

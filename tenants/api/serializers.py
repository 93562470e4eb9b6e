from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tenants.hooks import validate_signup_plan
from tenants.models import Tenant
from tenants.validators import validate_currency, validate_slug, validate_timezone
from tenants.workspace.models import ApiKey


def _django_validator(func: Any) -> Any:
    """Run a Django validator and keep its error code in DRF's error details."""
    from django.core.exceptions import ValidationError

    def run(value: Any) -> None:
        try:
            func(value)
        except ValidationError as exc:
            raise serializers.ValidationError(exc.messages[0], code=exc.code or "invalid") from exc

    return run


class SignupInputSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=63, validators=[_django_validator(validate_slug)])
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField()
    plan = serializers.SlugField(
        max_length=50,
        required=False,
        allow_blank=True,
        default="",
        validators=[_django_validator(validate_signup_plan)],
    )
    timezone = serializers.CharField(
        max_length=64,
        required=False,
        default="UTC",
        validators=[_django_validator(validate_timezone)],
    )
    currency = serializers.CharField(
        max_length=3,
        required=False,
        default="USD",
        validators=[_django_validator(validate_currency)],
    )


class SignupOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    domain = serializers.CharField()
    api_key = serializers.CharField(help_text="Shown once; store it now.")


class TenantSerializer(serializers.ModelSerializer):
    domains = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = (
            "id",
            "slug",
            "name",
            "contact_email",
            "status",
            "timezone",
            "currency",
            "config",
            "domains",
            "created_at",
        )
        read_only_fields = fields

    def get_domains(self, tenant: Tenant) -> list[str]:
        return [d.domain for d in tenant.domains.all()]


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields: tuple[str, ...] = ("id", "name", "prefix", "created_at", "revoked_at")
        read_only_fields: tuple[str, ...] = fields


class ApiKeyCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields: tuple[str, ...] = (*ApiKeySerializer.Meta.fields, "key")
        read_only_fields: tuple[str, ...] = fields

from __future__ import annotations

from django.core.exceptions import ValidationError

from subscriptions.models import Plan
from tenants import hooks


def signup_plan_validate(code: str) -> None:
    if not Plan.objects.filter(code=code, is_public=True, current_version__isnull=False).exists():
        raise ValidationError(f"There is no plan '{code}'.", code="unknown_plan")


def register() -> None:
    if signup_plan_validate not in hooks.signup_plan_validators:
        hooks.signup_plan_validators.append(signup_plan_validate)

"""The plan catalog as code: validate a whole catalog file, then create or update plans.

A catalog is ``{"plans": [ {code, name, interval, price, currency, ...}, ... ]}`` in YAML or
JSON. Validation covers the whole file before anything is written, and each message names the
plan and the field. Applying it is idempotent: a plan whose priced terms (interval, price,
currency, trial, features, quotas, rate limit, overage, Stripe price) changed gets a new
version; name, description, visibility and the like are updated in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction
from rest_framework import serializers

from core.audit import Actor, audit_record
from core.errors import InvalidInput
from core.events import event_record
from core.money import is_currency
from subscriptions.models import Grandfathering, Interval, Plan, PlanVersion, Quota

BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint
INT_MAX = 2**31 - 1


class OverageSpec(serializers.Serializer):
    unit_price = serializers.IntegerField(
        min_value=0, max_value=BIGINT_MAX, help_text="minor units per unit_size"
    )
    unit_size = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, default=1)


class PlanSpec(serializers.Serializer):
    code = serializers.SlugField(max_length=50)
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    interval = serializers.ChoiceField(choices=Interval.values)
    price = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, help_text="minor units")
    currency = serializers.CharField(min_length=3, max_length=3)
    trial_days = serializers.IntegerField(min_value=0, max_value=730, default=0)
    features = serializers.ListField(child=serializers.CharField(max_length=200), default=list)
    quotas = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, allow_null=True),
        default=dict,
    )
    rate_limit_per_minute = serializers.IntegerField(
        min_value=1, max_value=INT_MAX, allow_null=True, default=None
    )
    overage = serializers.DictField(child=OverageSpec(), default=dict)
    public = serializers.BooleanField(default=True)
    grandfathering = serializers.ChoiceField(
        choices=Grandfathering.values, default=Grandfathering.KEEP
    )
    requires_payment_method = serializers.BooleanField(default=False)
    stripe_price_id = serializers.CharField(
        max_length=100, required=False, allow_blank=True, allow_null=True, default=""
    )
    sort_order = serializers.IntegerField(min_value=0, max_value=INT_MAX, required=False)

    def validate_currency(self, value: str) -> str:
        if not is_currency(value.upper()):
            raise serializers.ValidationError(f"'{value}' is not an ISO 4217 currency.")
        return value.upper()

    def validate_quotas(self, value: dict[str, int | None]) -> dict[str, int | None]:
        for metric in value:
            serializers.SlugField().run_validation(metric)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(attrs["overage"]) - set(attrs["quotas"]))
        if unknown:
            raise serializers.ValidationError(
                {"overage": f"overage for metric(s) without a quota: {', '.join(unknown)}"}
            )
        unlimited = sorted(m for m in attrs["overage"] if attrs["quotas"][m] is None)
        if unlimited:
            raise serializers.ValidationError(
                {"overage": f"overage for unlimited metric(s): {', '.join(unlimited)}"}
            )
        attrs["stripe_price_id"] = attrs.get("stripe_price_id") or ""
        return attrs


def _flatten(errors: Any, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        return [
            m
            for key, value in errors.items()
            for m in _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(errors, list):
        if all(not isinstance(e, dict | list) for e in errors):
            return [f"{prefix}: {e}" if prefix else str(e) for e in errors]
        return [m for i, e in enumerate(errors) for m in _flatten(e, prefix)]
    return [f"{prefix}: {errors}"]


class CatalogError(InvalidInput):
    default_code = "invalid_catalog"


def catalog_load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot be read: {exc}") from exc
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from exc


def catalog_validate(data: Any) -> list[dict[str, Any]]:
    """Every plan of the catalog, validated; raises CatalogError listing every problem."""
    if not isinstance(data, dict) or not isinstance(data.get("plans"), list):
        raise CatalogError("A catalog is a mapping with a list under 'plans'.")
    problems: list[str] = []
    plans: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, raw in enumerate(data["plans"]):
        label = f"plan #{index + 1}"
        if isinstance(raw, dict) and isinstance(raw.get("code"), str):
            label = f"plan '{raw['code']}'"
        if not isinstance(raw, dict):
            problems.append(f"{label}: must be a mapping")
            continue
        unknown = sorted(set(raw) - set(PlanSpec().fields))
        if unknown:
            problems.append(f"{label}: unknown field(s): {', '.join(unknown)}")
        spec = PlanSpec(data=raw)
        if not spec.is_valid():
            problems.extend(f"{label}: field {m}" for m in _flatten(spec.errors))
            continue
        if spec.validated_data["code"] in seen:
            problems.append(f"{label}: duplicate code")
        seen.add(spec.validated_data["code"])
        plan = dict(spec.validated_data)
        plan["position"] = index  # the sort order of a plan created without one
        plans.append(plan)
    if problems:
        raise CatalogError(
            "The catalog is not valid:\n  " + "\n  ".join(problems), details={"problems": problems}
        )
    return plans


def _version_terms(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "interval": spec["interval"],
        "price_amount": spec["price"],
        "currency": spec["currency"],
        "trial_days": spec["trial_days"],
        "features": list(spec["features"]),
        "rate_limit_per_minute": spec["rate_limit_per_minute"],
        "stripe_price_id": spec["stripe_price_id"],
        "quotas": {
            metric: {
                "limit": limit,
                "overage_unit_price": spec["overage"].get(metric, {}).get("unit_price"),
                "overage_unit_size": spec["overage"].get(metric, {}).get("unit_size", 1),
            }
            for metric, limit in sorted(spec["quotas"].items())
        },
    }


def version_terms(version: PlanVersion) -> dict[str, Any]:
    return {
        "interval": version.interval,
        "price_amount": version.price_amount,
        "currency": version.currency,
        "trial_days": version.trial_days,
        "features": list(version.features),
        "rate_limit_per_minute": version.rate_limit_per_minute,
        "stripe_price_id": version.stripe_price_id,
        "quotas": {
            q.metric: {
                "limit": q.limit,
                "overage_unit_price": q.overage_unit_price,
                "overage_unit_size": q.overage_unit_size,
            }
            for q in sorted(version.quotas.all(), key=lambda q: q.metric)
        },
    }


def _plan_fields(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": spec["name"],
        "description": spec["description"],
        "is_public": spec["public"],
        "grandfathering": spec["grandfathering"],
        "requires_payment_method": spec["requires_payment_method"],
        # An explicit sort_order is applied; without one a plan keeps its place.
        **({"sort_order": spec["sort_order"]} if "sort_order" in spec else {}),
    }


@dataclass
class CatalogChange:
    code: str
    action: str  # created | new_version | updated | unchanged
    details: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        extra = f": {'; '.join(self.details)}" if self.details else ""
        return f"{self.code}: {self.action}{extra}"


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [
        f"{key} {before.get(key)!r} -> {after[key]!r}"
        for key in after
        if before.get(key) != after[key]
    ]


@transaction.atomic
def catalog_sync(*, data: Any, actor: Actor, dry_run: bool = False) -> list[CatalogChange]:
    """Create or update every plan of a catalog; with ``dry_run`` only report what would change."""
    specs = catalog_validate(data)
    changes: list[CatalogChange] = []
    for spec in specs:
        plan = Plan.objects.select_for_update().filter(code=spec["code"]).first()
        terms = _version_terms(spec)
        fields = _plan_fields(spec)
        if plan is None:
            changes.append(
                CatalogChange(
                    spec["code"],
                    "created",
                    [f"v1 {terms['price_amount']} {terms['currency']}/{terms['interval']}"],
                )
            )
            if not dry_run:
                plan = Plan.objects.create(
                    code=spec["code"], **{"sort_order": spec["position"], **fields}
                )
                _version_create(plan, terms, number=1, actor=actor)
            continue
        current = plan.current_version
        current_terms = version_terms(current) if current else {}
        field_diff = _diff({k: getattr(plan, k) for k in fields}, fields)
        term_diff = _diff(current_terms, terms)
        if term_diff:
            number = (
                plan.versions.order_by("-version").values_list("version", flat=True).first() or 0
            ) + 1
            changes.append(
                CatalogChange(spec["code"], "new_version", [f"v{number}", *term_diff, *field_diff])
            )
        elif field_diff:
            changes.append(CatalogChange(spec["code"], "updated", field_diff))
        else:
            changes.append(CatalogChange(spec["code"], "unchanged"))
        if dry_run:
            continue
        if field_diff:
            for key, value in fields.items():
                setattr(plan, key, value)
            plan.save()
        if term_diff:
            _version_create(plan, terms, number=number, actor=actor)
    if not dry_run and any(c.action != "unchanged" for c in changes):
        audit_record(
            actor=actor,
            action="catalog.sync",
            target_type="catalog",
            target_id="plans",
            data={"changes": [str(c) for c in changes if c.action != "unchanged"]},
        )
    return changes


def _version_create(plan: Plan, terms: dict[str, Any], *, number: int, actor: Actor) -> PlanVersion:
    quotas = terms["quotas"]
    version = PlanVersion.objects.create(
        plan=plan, version=number, **{k: v for k, v in terms.items() if k != "quotas"}
    )
    Quota.objects.bulk_create(
        [Quota(plan_version=version, metric=m, **q) for m, q in quotas.items()]
    )
    plan.current_version = version
    plan.save(update_fields=["current_version", "updated_at"])
    event_record(
        type="PlanVersionCreated",
        payload={
            "plan": plan.code,
            "version": number,
            "price": terms["price_amount"],
            "currency": terms["currency"],
        },
    )
    return version

"""The plan catalog as code: ``manage.py sync_plans``, versioned prices, the public plan list."""

from __future__ import annotations

import copy
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from core.models import AuditEntry, DomainEvent
from subscriptions.models import (
    CURRENT_STATUSES,
    Plan,
    PlanVersion,
    Quota,
    Subscription,
)

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "subscriptions" / "catalog_files" / "demo.yaml"
DEMO_CODES = ["free", "pro", "pro-yearly", "business", "internal"]


def demo() -> dict[str, Any]:
    """A fresh copy of the demo catalog (the one synced for the session)."""
    return yaml.safe_load(DEMO.read_text())


def plan_spec(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(p for p in data["plans"] if p["code"] == code)


STARTER = {
    "code": "starter",
    "name": "Starter",
    "interval": "month",
    "price": 1500,
    "currency": "USD",
    "quotas": {"api_calls": 5000},
}


def with_starter(data: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    data["plans"].append(copy.deepcopy(STARTER))
    return data


def write(tmp_path: Path, data: Any, name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def sync(path: Path, *args: str) -> str:
    buf = StringIO()
    call_command("sync_plans", str(path), *args, stdout=buf)
    return buf.getvalue()


def snapshot() -> dict[str, Any]:
    """Everything the catalog writes, to compare before and after."""
    return {
        "plans": list(
            Plan.objects.order_by("code").values(
                "code",
                "name",
                "description",
                "is_public",
                "grandfathering",
                "requires_payment_method",
                "sort_order",
                "current_version_id",
                "updated_at",
            )
        ),
        "versions": list(
            PlanVersion.objects.order_by("pk").values(
                "pk", "plan__code", "version", "price_amount", "currency", "interval"
            )
        ),
        "quotas": list(
            Quota.objects.order_by("pk").values(
                "pk", "plan_version_id", "metric", "limit", "overage_unit_price"
            )
        ),
        "audit": AuditEntry.objects.filter(action="catalog.sync").count(),
        "events": DomainEvent.objects.filter(type="PlanVersionCreated").count(),
    }


# --- idempotent create / update ------------------------------------------------------------


def test_the_synced_demo_catalog_is_unchanged_when_synced_again(tmp_path, alpha):
    before = snapshot()
    out = sync(DEMO)
    for code in DEMO_CODES:
        assert f"{code}: unchanged" in out
    assert "0 of 5 plan(s) changed." in out
    assert snapshot() == before


def test_sync_creates_a_plan_then_a_second_run_changes_nothing(tmp_path, alpha):
    path = write(tmp_path, with_starter(demo()))
    out = sync(path)
    assert "starter: created: v1 1500 USD/month" in out
    assert "free: unchanged" in out
    assert "1 of 6 plan(s) changed." in out

    plan = Plan.objects.get(code="starter")
    assert plan.name == "Starter"
    assert plan.is_public is True
    assert plan.sort_order == 5  # its position in the file
    version = plan.current_version
    assert version is not None
    assert (version.version, version.price_amount, version.currency, version.interval) == (
        1,
        1500,
        "USD",
        "month",
    )
    assert [(q.metric, q.limit, q.overage_unit_price) for q in version.quotas.all()] == [
        ("api_calls", 5000, None)
    ]
    entry = AuditEntry.objects.get(action="catalog.sync", actor="system:sync_plans")
    assert entry.actor == "system:sync_plans"
    assert entry.data["changes"] == ["starter: created: v1 1500 USD/month"]
    assert DomainEvent.objects.filter(
        type="PlanVersionCreated", payload__plan="starter", payload__version=1
    ).exists()

    before = snapshot()
    again = sync(path)
    assert "starter: unchanged" in again
    assert "0 of 6 plan(s) changed." in again
    assert "created" not in again
    assert snapshot() == before  # no write at all, not even an audit entry


def test_a_json_catalog_is_accepted_and_idempotent(tmp_path, alpha):
    path = write(tmp_path, with_starter(demo()), name="catalog.json")
    out = sync(path)
    assert "starter: created" in out
    assert Plan.objects.get(code="starter").current_version.price_amount == 1500
    before = snapshot()
    assert "0 of 6 plan(s) changed." in sync(path)
    assert snapshot() == before


def test_dry_run_shows_the_changes_and_writes_nothing(tmp_path, alpha):
    data = with_starter(demo())
    plan_spec(data, "pro")["price"] = 5900
    plan_spec(data, "free")["name"] = "Free forever"
    path = write(tmp_path, data)
    before = snapshot()

    out = sync(path, "--dry-run")

    assert "(dry run) pro: new_version: v2; price_amount 4900 -> 5900" in out
    assert "(dry run) free: updated: name 'Free' -> 'Free forever'" in out
    assert "(dry run) starter: created: v1 1500 USD/month" in out
    assert "(dry run) 3 of 6 plan(s) would change." in out
    assert snapshot() == before
    assert not Plan.objects.filter(code="starter").exists()
    assert Plan.objects.get(code="pro").current_version.price_amount == 4900

    # The same file for real does what the dry run said.
    real = sync(path)
    assert "pro: new_version: v2; price_amount 4900 -> 5900" in real
    assert "3 of 6 plan(s) changed." in real
    assert Plan.objects.get(code="pro").current_version.price_amount == 5900


# --- versioned prices ----------------------------------------------------------------------


def test_a_price_change_makes_a_new_version_and_subscriptions_keep_theirs(tmp_path, alpha):
    free = Plan.objects.get(code="free")
    v1 = free.current_version
    assert v1.version == 1
    sub = Subscription.objects.get(tenant=alpha.tenant, status__in=CURRENT_STATUSES)
    assert sub.plan_version_id == v1.pk

    data = demo()
    plan_spec(data, "free")["price"] = 500
    out = sync(write(tmp_path, data))

    assert "free: new_version: v2; price_amount 0 -> 500" in out
    free.refresh_from_db()
    v2 = free.current_version
    assert v2.pk != v1.pk
    assert (v2.version, v2.price_amount) == (2, 500)
    assert sorted(q.metric for q in v2.quotas.all()) == [
        "api_calls",
        "bandwidth_bytes",
        "storage_bytes",
    ]
    # The old version is intact, with its quotas.
    v1.refresh_from_db()
    assert (v1.version, v1.price_amount) == (1, 0)
    assert {q.metric: q.limit for q in v1.quotas.all()} == {
        "api_calls": 10000,
        "storage_bytes": 100000000,
        "bandwidth_bytes": 1000000000,
    }
    assert free.versions.count() == 2
    # The existing subscription keeps the version it signed up on.
    sub.refresh_from_db()
    assert sub.plan_version_id == v1.pk
    assert DomainEvent.objects.filter(
        type="PlanVersionCreated", payload__plan="free", payload__version=2, payload__price=500
    ).exists()


def test_a_quota_change_makes_a_new_version(tmp_path, alpha):
    pro = Plan.objects.get(code="pro")
    v1 = pro.current_version
    data = demo()
    spec = plan_spec(data, "pro")
    spec["quotas"]["api_calls"] = 2000000
    spec["quotas"]["exports"] = 10
    out = sync(write(tmp_path, data))

    assert "pro: new_version: v2" in out
    assert "1 of 5 plan(s) changed." in out
    pro.refresh_from_db()
    assert pro.current_version.version == 2
    new = {q.metric: q for q in pro.current_version.quotas.all()}
    assert new["api_calls"].limit == 2000000
    assert new["api_calls"].overage_unit_price == 1  # the overage came along
    assert new["api_calls"].overage_unit_size == 1000
    assert new["exports"].limit == 10
    old = {q.metric: q.limit for q in v1.quotas.all()}
    assert old["api_calls"] == 1000000
    assert "exports" not in old
    assert pro.current_version.price_amount == v1.price_amount == 4900


def test_an_overage_change_makes_a_new_version(tmp_path, alpha):
    data = demo()
    plan_spec(data, "pro")["overage"]["api_calls"]["unit_price"] = 2
    out = sync(write(tmp_path, data))
    assert "pro: new_version: v2" in out
    pro = Plan.objects.get(code="pro")
    assert pro.current_version.quotas.get(metric="api_calls").overage_unit_price == 2
    assert pro.versions.get(version=1).quotas.get(metric="api_calls").overage_unit_price == 1


def test_name_description_and_visibility_change_in_place_without_a_version(tmp_path, alpha):
    pro = Plan.objects.get(code="pro")
    version_id = pro.current_version_id
    versions = PlanVersion.objects.count()
    events = DomainEvent.objects.filter(type="PlanVersionCreated").count()
    data = demo()
    spec = plan_spec(data, "pro")
    spec["name"] = "Pro Plus"
    spec["description"] = "For teams that grew."
    spec["public"] = False

    out = sync(write(tmp_path, data))

    assert "pro: updated:" in out
    assert "name 'Pro' -> 'Pro Plus'" in out
    assert "is_public True -> False" in out
    assert "new_version" not in out
    assert "1 of 5 plan(s) changed." in out
    pro.refresh_from_db()
    assert (pro.name, pro.description, pro.is_public) == (
        "Pro Plus",
        "For teams that grew.",
        False,
    )
    assert pro.current_version_id == version_id
    assert PlanVersion.objects.count() == versions
    assert DomainEvent.objects.filter(type="PlanVersionCreated").count() == events
    assert "0 of 5 plan(s) changed." in sync(write(tmp_path, data))


# --- a bad file is rejected as a whole -----------------------------------------------------


def _bad(mutate):
    """The demo catalog plus a valid new plan, broken by ``mutate``."""

    def make() -> dict[str, Any]:
        data = with_starter(demo())
        mutate(data)
        return data

    return make


def _set(code: str, key: str, value: Any):
    def mutate(data: dict[str, Any]) -> None:
        plan_spec(data, code)[key] = value

    return mutate


def _duplicate(data: dict[str, Any]) -> None:
    data["plans"].append({**copy.deepcopy(plan_spec(data, "pro")), "price": 1})


BAD_PLANS = [
    pytest.param(
        _set("pro", "colour", "blue"), "plan 'pro': unknown field(s): colour", id="unknown"
    ),
    pytest.param(
        _set("pro", "price", -1),
        "plan 'pro': field price: Ensure this value is greater than or equal to 0.",
        id="negative-price",
    ),
    pytest.param(
        _set("pro", "currency", "XYZ"),
        "plan 'pro': field currency: 'XYZ' is not an ISO 4217 currency.",
        id="bad-currency",
    ),
    pytest.param(
        _set("pro", "interval", "week"),
        "plan 'pro': field interval: \"week\" is not a valid choice.",
        id="bad-interval",
    ),
    pytest.param(
        _set("pro", "overage", {"exports": {"unit_price": 1}}),
        "plan 'pro': field overage: overage for metric(s) without a quota: exports",
        id="overage-without-quota",
    ),
    pytest.param(
        _set("business", "overage", {"storage_bytes": {"unit_price": 1}}),
        "plan 'business': field overage: overage for unlimited metric(s): storage_bytes",
        id="overage-unlimited",
    ),
    pytest.param(_duplicate, "plan 'pro': duplicate code", id="duplicate-code"),
    pytest.param(
        _set("pro", "quotas", {"api_calls": -5}),
        "plan 'pro': field quotas.api_calls: Ensure this value is greater than or equal to 0.",
        id="negative-quota",
    ),
    pytest.param(
        _set("pro", "overage", {"api_calls": {"unit_price": 1, "unit_size": 0}}),
        "plan 'pro': field overage.api_calls.unit_size:",
        id="zero-unit-size",
    ),
    pytest.param(
        lambda data: data["plans"].append({"name": "No code", "interval": "month"}),
        "plan #7: field code: This field is required.",
        id="missing-code",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), BAD_PLANS)
@pytest.mark.parametrize("name", ["catalog.yaml", "catalog.json"])
def test_a_bad_plan_rejects_the_whole_file(tmp_path, alpha, mutate, message, name):
    data = with_starter(demo())
    plan_spec(data, "free")["price"] = 700  # a valid change that must not be written either
    mutate(data)
    path = write(tmp_path, data, name=name)
    before = snapshot()

    with pytest.raises(CommandError) as exc:
        sync(path)

    text = str(exc.value)
    assert text.startswith("The catalog is not valid:")
    assert message in text
    assert snapshot() == before
    assert not Plan.objects.filter(code="starter").exists()
    assert Plan.objects.get(code="free").current_version.price_amount == 0


def test_every_problem_of_the_file_is_listed(tmp_path, alpha):
    data = with_starter(demo())
    plan_spec(data, "pro")["price"] = -1
    plan_spec(data, "starter")["currency"] = "usdollar"
    plan_spec(data, "free")["interval"] = "fortnight"
    before = snapshot()
    with pytest.raises(CommandError) as exc:
        sync(write(tmp_path, data))
    text = str(exc.value)
    assert "plan 'pro': field price:" in text
    assert "plan 'starter': field currency:" in text
    assert "plan 'free': field interval:" in text
    assert snapshot() == before


def test_dry_run_of_a_bad_file_is_rejected_too(tmp_path, alpha):
    data = with_starter(demo())
    plan_spec(data, "pro")["price"] = -1
    with pytest.raises(CommandError, match="plan 'pro': field price"):
        sync(write(tmp_path, data), "--dry-run")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("- code: pro\n  name: Pro\n", id="a-list"),
        pytest.param("plans:\n  code: pro\n", id="plans-not-a-list"),
        pytest.param("products: []\n", id="no-plans"),
        pytest.param("", id="empty"),
        pytest.param("just a string\n", id="scalar"),
    ],
)
def test_a_file_that_is_not_a_catalog_is_rejected(tmp_path, alpha, content):
    path = tmp_path / "catalog.yaml"
    path.write_text(content)
    before = snapshot()
    with pytest.raises(CommandError) as exc:
        sync(path)
    assert str(exc.value) == "A catalog is a mapping with a list under 'plans'."
    assert snapshot() == before


def test_a_plan_that_is_not_a_mapping_is_rejected(tmp_path, alpha):
    data = with_starter(demo())
    data["plans"].append("enterprise")
    with pytest.raises(CommandError) as exc:
        sync(write(tmp_path, data))
    assert "plan #7: must be a mapping" in str(exc.value)
    assert not Plan.objects.filter(code="starter").exists()


def test_invalid_yaml_is_rejected(tmp_path, alpha):
    path = tmp_path / "catalog.yaml"
    path.write_text("plans:\n  - code: pro\n    name: [unclosed\n")
    before = snapshot()
    with pytest.raises(CommandError) as exc:
        sync(path)
    assert f"{path}: not valid YAML" in str(exc.value)
    assert snapshot() == before


def test_invalid_json_is_rejected(tmp_path, alpha):
    path = tmp_path / "catalog.json"
    path.write_text('{"plans": [{"code": "starter",}]}')
    before = snapshot()
    with pytest.raises(CommandError) as exc:
        sync(path)
    assert f"{path}: not valid JSON" in str(exc.value)
    assert snapshot() == before


def test_a_missing_file_is_a_command_error(tmp_path, alpha):
    path = tmp_path / "nope.yaml"
    with pytest.raises(CommandError) as exc:
        sync(path)
    assert str(exc.value) == f"{path}: no such file"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("price", 10**19, id="price-beyond-bigint"),
        pytest.param("rate_limit_per_minute", 2**31, id="rate-limit-beyond-integer"),
    ],
)
def test_a_value_the_database_cannot_store_is_a_clear_catalog_error(tmp_path, alpha, key, value):
    """Validation must catch it, naming the plan and the field, not the database."""
    data = with_starter(demo())
    plan_spec(data, "starter")[key] = value
    with pytest.raises(CommandError) as exc:
        sync(write(tmp_path, data))
    assert f"plan 'starter': field {key}:" in str(exc.value)
    assert not Plan.objects.filter(code="starter").exists()


# --- the public plan list ------------------------------------------------------------------


def plans_api() -> list[dict[str, Any]]:
    response = Client(HTTP_HOST="localhost").get("/api/v1/plans/")
    assert response.status_code == 200, response.content
    return response.json()


def test_public_plans_lists_only_public_plans_with_their_terms(alpha):
    body = plans_api()
    codes = [p["code"] for p in body]
    assert codes == ["free", "pro", "pro-yearly", "business"]  # catalog order, no internal
    pro = next(p for p in body if p["code"] == "pro")
    assert pro["name"] == "Pro"
    assert pro["version"] == 1
    assert pro["price"] == {"amount": 4900, "currency": "USD"}
    assert pro["interval"] == "month"
    assert pro["trial_days"] == 14
    assert pro["features"] == ["api", "email-support", "webhooks"]
    assert pro["rate_limit_per_minute"] == 600
    quotas = {q["metric"]: q for q in pro["quotas"]}
    assert [q["metric"] for q in pro["quotas"]] == sorted(quotas)
    assert quotas["api_calls"] == {
        "metric": "api_calls",
        "limit": 1000000,
        "overage_unit_price": 1,
        "overage_unit_size": 1000,
    }
    assert quotas["storage_bytes"]["limit"] == 10000000000
    assert quotas["storage_bytes"]["overage_unit_price"] is None  # a hard limit
    business = next(p for p in body if p["code"] == "business")
    assert {q["metric"]: q["limit"] for q in business["quotas"]}["storage_bytes"] is None


def test_public_plans_follow_the_catalog(tmp_path, alpha):
    data = with_starter(demo())
    plan_spec(data, "pro")["public"] = False
    plan_spec(data, "free")["price"] = 300
    sync(write(tmp_path, data))
    body = {p["code"]: p for p in plans_api()}
    assert "pro" not in body  # hidden
    assert "internal" not in body
    assert body["starter"]["price"] == {"amount": 1500, "currency": "USD"}
    assert (body["free"]["version"], body["free"]["price"]["amount"]) == (2, 300)

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.audit import Actor
from subscriptions.models import Subscription, SubscriptionStatus
from subscriptions.services import subscription_cancel, subscription_mark_past_due
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

STAFF = Actor("staff", "tester")


def current(tenant) -> Subscription:
    return Subscription.objects.get(tenant=tenant, status__in=["trialing", "active", "past_due"])


def test_signup_starts_a_subscription_on_the_chosen_plan(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/tenants/",
            {"slug": "trying", "name": "T", "email": "t@example.com", "plan": "pro"},
            format="json",
            HTTP_HOST="localhost",
        )
    assert response.status_code == 201
    sub = current(Tenant.objects.get(slug="trying"))
    assert (sub.plan_version.plan.code, sub.status) == ("pro", SubscriptionStatus.TRIALING)


def test_signup_without_plan_is_on_free(alpha):
    sub = current(alpha.tenant)
    assert (sub.plan_version.plan.code, sub.status) == ("free", SubscriptionStatus.ACTIVE)


def test_signup_with_an_unknown_or_hidden_plan_is_400(api):
    for plan in ("platinum", "internal"):
        response = api.post(
            "/api/v1/tenants/",
            {"slug": "planless", "name": "T", "email": "t@example.com", "plan": plan},
            format="json",
            HTTP_HOST="localhost",
        )
        assert response.status_code == 400
        assert response.json()["error"]["details"]["plan"][0]["code"] == "unknown_plan"
    assert not Tenant.objects.filter(slug="planless").exists()


def test_get_subscription(alpha_client):
    body = alpha_client.get("/api/v1/subscription/").json()
    assert body["status"] == "active"
    assert body["plan"]["code"] == "free"
    assert body["plan"]["price"] == {"amount": 0, "currency": "USD"}
    assert {
        "current_period_start",
        "current_period_end",
        "trial_end",
        "cancel_at_period_end",
        "scheduled_change",
    } <= set(body)
    assert body["scheduled_change"] is None


def test_preview_then_change_then_cancel_and_resume(alpha_client):
    preview = alpha_client.post(
        "/api/v1/subscription/preview-change/", {"plan": "pro"}, format="json"
    )
    assert preview.status_code == 200, preview.content
    assert preview.json()["kind"] == "upgrade"
    assert preview.json()["lines"][0]["amount"] == 0  # nothing to credit on free
    changed = alpha_client.post("/api/v1/subscription/change/", {"plan": "pro"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["plan"]["code"] == "pro"
    assert changed.json()["change"]["total"] == preview.json()["total"]

    down = alpha_client.post("/api/v1/subscription/change/", {"plan": "free"}, format="json")
    assert down.json()["scheduled_change"]["plan"] == "free"

    cancelled = alpha_client.post("/api/v1/subscription/cancel/", {}, format="json")
    assert cancelled.status_code == 200
    assert cancelled.json()["cancel_at_period_end"] is True
    again = alpha_client.post(
        "/api/v1/subscription/cancel/", {"at_period_end": True}, format="json"
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_cancelled")
    resumed = alpha_client.post("/api/v1/subscription/resume/")
    assert resumed.status_code == 200
    assert resumed.json()["cancel_at_period_end"] is False
    not_cancelled = alpha_client.post("/api/v1/subscription/resume/")
    assert (not_cancelled.status_code, not_cancelled.json()["error"]["code"]) == (
        409,
        "not_cancelled",
    )


def test_change_errors_have_codes(alpha_client):
    same = alpha_client.post("/api/v1/subscription/change/", {"plan": "free"}, format="json")
    assert (same.status_code, same.json()["error"]["code"]) == (409, "same_plan")
    unknown = alpha_client.post("/api/v1/subscription/change/", {"plan": "platinum"}, format="json")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "unknown_plan")
    missing = alpha_client.post("/api/v1/subscription/change/", {}, format="json")
    assert (missing.status_code, missing.json()["error"]["details"]["plan"][0]["code"]) == (
        400,
        "required",
    )


def test_resume_an_expired_subscription_is_409(
    alpha, alpha_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(tenant_id=alpha.tenant.pk, at_period_end=False, actor=STAFF)
    response = alpha_client.post("/api/v1/subscription/resume/")
    assert (response.status_code, response.json()["error"]["code"]) == (
        409,
        "subscription_not_resumable",
    )


def test_inactive_subscription_is_402_except_to_recover(
    alpha, alpha_client, django_capture_on_commit_callbacks
):
    assert alpha_client.get("/api/v1/api-keys/").status_code == 200  # warm the cached status
    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(tenant_id=alpha.tenant.pk, at_period_end=False, actor=STAFF)
    refused = alpha_client.get("/api/v1/api-keys/")
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "subscription_inactive"
    # What it needs to recover still works: read the subscription and the tenant, change plan.
    assert alpha_client.get("/api/v1/subscription/").status_code == 200
    assert alpha_client.get("/api/v1/tenant/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        restarted = alpha_client.post(
            "/api/v1/subscription/change/", {"plan": "free"}, format="json"
        )
    assert restarted.status_code == 200, restarted.content
    assert restarted.json()["change"]["kind"] == "restart"
    assert alpha_client.get("/api/v1/api-keys/").status_code == 200


def test_past_due_works_within_grace_and_is_402_after(
    alpha, alpha_client, settings, django_capture_on_commit_callbacks
):
    settings.SUBSCRIPTION_PAST_DUE_GRACE_DAYS = 10
    with django_capture_on_commit_callbacks(execute=True):
        subscription_mark_past_due(subscription_id=current(alpha.tenant).pk)
    assert alpha_client.get("/api/v1/api-keys/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=11)):
        response = alpha_client.get("/api/v1/api-keys/")
    assert response.status_code == 402
    assert response.json()["error"]["details"]["status"] == "past_due"


def test_a_stranger_gets_401_not_402(api, alpha, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(tenant_id=alpha.tenant.pk, at_period_end=False, actor=STAFF)
    assert api.get("/api/v1/api-keys/", HTTP_HOST=alpha.host).status_code == 401


def test_warm_request_checks_the_subscription_without_a_query(alpha_client):
    alpha_client.get("/api/v1/api-keys/")
    with CaptureQueriesContext(connection) as queries:
        assert alpha_client.get("/api/v1/api-keys/").status_code == 200
    sqls = [q["sql"] for q in queries.captured_queries]
    assert not any("subscriptions_" in sql for sql in sqls), sqls
    assert not any("tenants_domain" in sql or "tenants_tenant" in sql for sql in sqls), sqls


def test_plans_are_public_and_list_only_public_ones(api):
    response = api.get("/api/v1/plans/", HTTP_HOST="localhost")
    assert response.status_code == 200
    codes = [p["code"] for p in response.json()]
    assert "pro" in codes and "free" in codes
    assert "internal" not in codes
    pro = next(p for p in response.json() if p["code"] == "pro")
    assert pro["price"] == {"amount": 4900, "currency": "USD"}
    assert {q["metric"]: q["overage_unit_price"] for q in pro["quotas"]}["api_calls"] == 1

"""Staff views of plans and subscriptions: versions read-only, actions ask for a reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core.models import AuditEntry
from subscriptions.models import (
    CURRENT_STATUSES,
    Plan,
    PlanVersion,
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
)
from tenants.services import tenant_create

pytestmark = pytest.mark.django_db

SUBS = "/admin/subscriptions/subscription/"
ALPHA = b">alpha</td>"  # the tenant column of a changelist row
TRIALCO = b">trialco</td>"


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser(
        "staffer", "staff@example.com", "pw-not-used-elsewhere"
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def current(tenant_id: int) -> Subscription:
    return Subscription.objects.select_related("plan_version__plan").get(
        tenant_id=tenant_id, status__in=CURRENT_STATUSES
    )


@pytest.fixture
def trialing(alpha, django_capture_on_commit_callbacks) -> Subscription:
    """A new tenant that signed up for ``pro``: its subscription is on the 14-day trial."""
    with django_capture_on_commit_callbacks(execute=True):
        created = tenant_create(
            slug="trialco",
            name="Trial Co",
            email="owner@trialco.example",
            plan="pro",
            provision=False,
        )
    sub = current(created.tenant.pk)
    assert sub.status == SubscriptionStatus.TRIALING
    assert sub.plan_version.plan.code == "pro"
    assert sub.trial_end == sub.current_period_start + timedelta(days=14)
    return sub


def act(client: Client, action: str, sub: Subscription, **data: str):
    return client.post(SUBS, {"action": action, "_selected_action": [sub.pk], **data})


def state(sub: Subscription) -> tuple:
    fresh = Subscription.objects.get(pk=sub.pk)
    return (
        fresh.plan_version_id,
        fresh.status,
        fresh.cancel_at_period_end,
        fresh.cancelled_at,
        fresh.trial_end,
        fresh.current_period_end,
        fresh.scheduled_plan_version_id,
    )


def audits(sub: Subscription):
    return AuditEntry.objects.filter(target_type="subscription", target_id=str(sub.pk))


def asks_for_a_reason_then_refuses_without_one(
    client: Client, action: str, sub: Subscription, **data: str
) -> None:
    before, entries = state(sub), audits(sub).count()
    ask = act(client, action, sub)
    assert ask.status_code == 200
    assert b"give a reason" in ask.content
    assert b'name="reason"' in ask.content
    assert f'value="{sub.pk}"'.encode() in ask.content
    assert f'name="action" value="{action}"'.encode() in ask.content
    again = act(client, action, sub, apply="1", reason="", **data)
    assert again.status_code == 200
    assert b"give a reason" in again.content
    assert b"This field is required." in again.content
    assert state(sub) == before
    assert audits(sub).count() == entries


# --- plans ---------------------------------------------------------------------------------


def test_plan_changelist_lists_the_catalog(staff_client, alpha):
    response = staff_client.get("/admin/subscriptions/plan/")
    assert response.status_code == 200
    for code in ("free", "pro", "pro-yearly", "business", "internal"):
        assert f">{code}<".encode() in response.content
    hidden = staff_client.get("/admin/subscriptions/plan/", {"is_public__exact": "0"})
    assert b">internal<" in hidden.content
    assert b">business<" not in hidden.content


def test_plan_change_page_shows_versions_inline_read_only(staff_client, alpha):
    pro = Plan.objects.get(code="pro")
    response = staff_client.get(f"/admin/subscriptions/plan/{pro.pk}/change/")
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="versions-TOTAL_FORMS"' in content
    assert "4900" in content  # the version's price, shown
    assert "api_calls: 1000000" in content  # its quota summary
    # Shown, not editable: no input for any version field.
    assert 'name="versions-0-price_amount"' not in content
    assert 'name="versions-0-interval"' not in content
    assert 'name="code"' not in content  # the code is read-only too
    assert f"/admin/subscriptions/planversion/{pro.current_version_id}/change/" in content


def test_plans_cannot_be_added_or_deleted_in_the_admin(staff_client, alpha):
    pro = Plan.objects.get(code="pro")
    assert staff_client.get("/admin/subscriptions/plan/add/").status_code == 403
    assert staff_client.post("/admin/subscriptions/plan/add/", {"code": "x"}).status_code == 403
    assert staff_client.get(f"/admin/subscriptions/plan/{pro.pk}/delete/").status_code == 403
    assert staff_client.get("/admin/subscriptions/planversion/add/").status_code == 403
    assert not Plan.objects.filter(code="x").exists()


def test_plan_version_page_shows_quotas_inline_and_is_read_only(staff_client, alpha):
    version = Plan.objects.get(code="pro").current_version
    url = f"/admin/subscriptions/planversion/{version.pk}/change/"
    response = staff_client.get(url)
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="quotas-TOTAL_FORMS"' in content
    for metric in ("api_calls", "bandwidth_bytes", "reports_generated", "storage_bytes"):
        assert metric in content
    assert 'name="price_amount"' not in content
    assert 'name="quotas-0-limit"' not in content
    # A POST cannot change a version either.
    staff_client.post(url, {"price_amount": "1", "interval": "month", "currency": "USD"})
    assert PlanVersion.objects.get(pk=version.pk).price_amount == 4900


# --- subscriptions: list and filters -------------------------------------------------------


def test_subscription_changelist_filters_by_status_and_plan(staff_client, alpha, trialing):
    alpha_sub = current(alpha.tenant.pk)
    everything = staff_client.get(SUBS)
    assert everything.status_code == 200
    assert ALPHA in everything.content
    assert TRIALCO in everything.content

    by_status = staff_client.get(SUBS, {"status__exact": "trialing"})
    assert by_status.status_code == 200
    assert TRIALCO in by_status.content
    assert ALPHA not in by_status.content

    free = Plan.objects.get(code="free")
    by_plan = staff_client.get(SUBS, {"plan_version__plan__id__exact": free.pk})
    assert by_plan.status_code == 200
    assert ALPHA in by_plan.content
    assert TRIALCO not in by_plan.content
    assert alpha_sub.plan_version.plan_id == free.pk


def test_subscription_change_page_is_read_only(staff_client, alpha):
    sub = current(alpha.tenant.pk)
    url = f"{SUBS}{sub.pk}/change/"
    response = staff_client.get(url)
    assert response.status_code == 200
    assert b'name="status"' not in response.content
    staff_client.post(url, {"status": "cancelled"})
    assert Subscription.objects.get(pk=sub.pk).status == SubscriptionStatus.ACTIVE


# --- subscriptions: actions ----------------------------------------------------------------


def test_change_plan_asks_for_a_reason_then_upgrades_and_audits(
    staff_client, alpha, django_capture_on_commit_callbacks
):
    sub = current(alpha.tenant.pk)
    assert sub.plan_version.plan.code == "free"
    asks_for_a_reason_then_refuses_without_one(staff_client, "change_plan", sub, plan="pro")
    ask = act(staff_client, "change_plan", sub)
    assert b'value="pro"' in ask.content  # plans are chosen by code

    with django_capture_on_commit_callbacks(execute=True):
        done = act(staff_client, "change_plan", sub, apply="1", reason="sales deal", plan="pro")
    assert done.status_code == 302
    sub.refresh_from_db()
    assert sub.plan_version_id == Plan.objects.get(code="pro").current_version_id
    assert sub.status == SubscriptionStatus.ACTIVE
    entry = audits(sub).get(action="subscription.upgrade")
    assert entry.actor == "staff:staffer"
    assert entry.reason == "sales deal"
    assert entry.tenant_id == alpha.tenant.pk


def test_change_plan_to_an_unknown_code_is_refused(staff_client, alpha):
    sub = current(alpha.tenant.pk)
    before = state(sub)
    response = act(staff_client, "change_plan", sub, apply="1", reason="x", plan="platinum")
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    assert state(sub) == before


def test_cancel_asks_for_a_reason_then_cancels_at_period_end_and_audits(
    staff_client, alpha, django_capture_on_commit_callbacks
):
    sub = current(alpha.tenant.pk)
    asks_for_a_reason_then_refuses_without_one(staff_client, "cancel", sub, at_period_end="on")

    with django_capture_on_commit_callbacks(execute=True):
        done = act(
            staff_client, "cancel", sub, apply="1", reason="customer asked", at_period_end="on"
        )
    assert done.status_code == 302
    sub.refresh_from_db()
    assert sub.cancel_at_period_end is True
    assert sub.cancelled_at is not None
    assert sub.status == SubscriptionStatus.ACTIVE  # until the period ends
    entry = audits(sub).get(action="subscription.cancel")
    assert entry.actor == "staff:staffer"
    assert entry.reason == "customer asked"
    assert entry.data["at_period_end"] is True


def test_cancel_now_ends_the_subscription(staff_client, alpha):
    sub = current(alpha.tenant.pk)
    done = act(staff_client, "cancel", sub, apply="1", reason="fraud")  # box unticked: now
    assert done.status_code == 302
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.CANCELLED
    assert sub.ended_at is not None
    assert audits(sub).get(action="subscription.cancel").data["at_period_end"] is False


def test_resume_asks_for_a_reason_then_resumes_and_audits(
    staff_client, alpha, django_capture_on_commit_callbacks
):
    sub = current(alpha.tenant.pk)
    act(staff_client, "cancel", sub, apply="1", reason="customer asked", at_period_end="on")
    sub.refresh_from_db()
    assert sub.cancel_at_period_end is True
    asks_for_a_reason_then_refuses_without_one(staff_client, "resume", sub)

    with django_capture_on_commit_callbacks(execute=True):
        done = act(staff_client, "resume", sub, apply="1", reason="changed their mind")
    assert done.status_code == 302
    sub.refresh_from_db()
    assert sub.cancel_at_period_end is False
    assert sub.cancelled_at is None
    entry = audits(sub).get(action="subscription.resume")
    assert entry.actor == "staff:staffer"
    assert entry.reason == "changed their mind"


def test_extend_trial_asks_for_a_reason_then_extends_and_audits(
    staff_client, trialing, django_capture_on_commit_callbacks
):
    sub = trialing
    old_trial_end, old_period_end = sub.trial_end, sub.current_period_end
    asks_for_a_reason_then_refuses_without_one(staff_client, "extend_trial", sub, days="7")

    with django_capture_on_commit_callbacks(execute=True):
        done = act(staff_client, "extend_trial", sub, apply="1", reason="onboarding", days="7")
    assert done.status_code == 302
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.TRIALING
    assert sub.trial_end == old_trial_end + timedelta(days=7)
    assert sub.current_period_end == old_period_end + timedelta(days=7)
    period = SubscriptionPeriod.objects.get(subscription=sub, start=sub.current_period_start)
    assert period.end == sub.trial_end
    assert period.is_trial is True
    entry = audits(sub).get(action="subscription.extend_trial")
    assert entry.actor == "staff:staffer"
    assert entry.reason == "onboarding"
    assert entry.data["days"] == 7


def test_extend_trial_needs_a_positive_number_of_days(staff_client, trialing):
    before = state(trialing)
    response = act(staff_client, "extend_trial", trialing, apply="1", reason="x", days="0")
    assert response.status_code == 200
    assert b"greater than or equal to 1" in response.content
    assert state(trialing) == before


def test_change_plan_during_a_trial_keeps_the_trial(staff_client, trialing):
    done = act(
        staff_client, "change_plan", trialing, apply="1", reason="wants sso", plan="business"
    )
    assert done.status_code == 302
    sub = Subscription.objects.get(pk=trialing.pk)
    assert sub.plan_version.plan.code == "business"
    assert sub.status == SubscriptionStatus.TRIALING
    assert sub.trial_end == trialing.trial_end
    assert audits(sub).get(action="subscription.upgrade").reason == "wants sso"


@pytest.mark.parametrize(
    ("action", "data", "message"),
    [
        pytest.param("resume", {}, b"The subscription is not cancelled.", id="resume"),
        pytest.param(
            "extend_trial",
            {"days": "3"},
            b"Only a trialing subscription can have its trial extended.",
            id="extend-active",
        ),
        pytest.param(
            "change_plan",
            {"plan": "free"},
            b"The subscription is already on this plan.",
            id="same-plan",
        ),
    ],
)
def test_an_impossible_action_is_reported_not_applied(staff_client, alpha, action, data, message):
    sub = current(alpha.tenant.pk)
    before, entries = state(sub), audits(sub).count()
    response = act(staff_client, action, sub, apply="1", reason="try", **data)
    assert response.status_code == 302
    page = staff_client.get(response["Location"])
    assert f"Subscription {sub.pk}: ".encode() + message in page.content  # capfirst
    assert b"subscription(s)." not in page.content  # no success message
    assert state(sub) == before
    assert audits(sub).count() == entries


def test_an_action_on_several_subscriptions_applies_to_each(staff_client, alpha, beta):
    subs = [current(alpha.tenant.pk), current(beta.tenant.pk)]
    response = staff_client.post(
        SUBS,
        {
            "action": "cancel",
            "_selected_action": [s.pk for s in subs],
            "apply": "1",
            "reason": "sunset",
            "at_period_end": "on",
        },
        follow=True,
    )
    assert b"Cancel: 2 subscription(s)." in response.content
    for sub in subs:
        sub.refresh_from_db()
        assert sub.cancel_at_period_end is True
        assert audits(sub).get(action="subscription.cancel").reason == "sunset"

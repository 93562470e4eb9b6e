"""Every lifecycle path, with amounts checked against values computed by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from core.audit import Actor
from core.errors import Conflict, InvalidInput
from core.models import AuditEntry, DomainEvent
from subscriptions.models import (
    PendingInvoiceItem,
    Plan,
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
)
from subscriptions.services import (
    subscription_cancel,
    subscription_change,
    subscription_change_preview,
    subscription_create,
    subscription_mark_paid,
    subscription_mark_past_due,
    subscription_payment_method_set,
    subscription_renew,
    subscription_resume,
)
from tests.subscriptions.conftest import utc

pytestmark = pytest.mark.django_db

STAFF = Actor("staff", "tester")
JAN1 = utc(2027, 1, 1)
JAN16 = utc(2027, 1, 16)
FEB1 = utc(2027, 2, 1)


def periods(sub: Subscription) -> list[tuple]:
    return list(
        sub.periods.order_by("number").values_list(
            "number", "start", "end", "plan_version__plan__code"
        )
    )


def test_create_on_free_when_no_plan_is_given(new_tenant):
    tenant = new_tenant()
    sub = subscription_create(tenant_id=tenant.pk, now=JAN1)
    assert sub.plan_version.plan.code == "free"
    assert sub.status == SubscriptionStatus.ACTIVE
    assert (sub.current_period_start, sub.current_period_end) == (JAN1, FEB1)
    assert periods(sub) == [(1, JAN1, FEB1, "free")]
    assert AuditEntry.objects.filter(action="subscription.create", target_id=str(sub.pk)).exists()
    assert DomainEvent.objects.filter(type="SubscriptionCreated", tenant_id=tenant.pk).exists()


def test_create_with_the_plans_trial(new_tenant):
    sub = subscription_create(tenant_id=new_tenant().pk, plan_code="pro", now=JAN1)
    assert sub.status == SubscriptionStatus.TRIALING
    assert sub.trial_end == JAN1 + timedelta(days=14)
    assert sub.current_period_end == sub.trial_end


def test_create_unknown_plan_and_second_current_subscription_refused(new_tenant):
    tenant = new_tenant()
    with pytest.raises(InvalidInput) as unknown:
        subscription_create(tenant_id=tenant.pk, plan_code="platinum")
    assert unknown.value.code == "unknown_plan"
    subscription_create(tenant_id=tenant.pk)
    with pytest.raises(Conflict) as twice:
        subscription_create(tenant_id=tenant.pk)
    assert twice.value.code == "subscription_exists"


def test_one_current_subscription_per_tenant_is_a_database_constraint(new_tenant):
    tenant = new_tenant()
    sub = subscription_create(tenant_id=tenant.pk, now=JAN1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(
            tenant=tenant,
            plan_version=sub.plan_version,
            status=SubscriptionStatus.ACTIVE,
            billing_anchor=JAN1,
            current_period_start=JAN1,
            current_period_end=FEB1,
        )
    # An ended one does not count.
    Subscription.objects.create(
        tenant=tenant,
        plan_version=sub.plan_version,
        status=SubscriptionStatus.EXPIRED,
        billing_anchor=JAN1,
        current_period_start=JAN1,
        current_period_end=FEB1,
    )


def test_upgrade_applies_now_with_proration_to_the_second(plans, new_tenant):
    tenant = new_tenant()
    subscription_create(tenant_id=tenant.pk, plan_code="starter", now=JAN1)
    # Jan 1 - Feb 1 is 2,678,400 s; from Jan 16 00:00, 1,382,400 s remain.
    # credit: 1000 * 1382400 / 2678400 = 516.129 -> -516; charge: 5000 * ... = 2580.645 -> 2581.
    preview = subscription_change_preview(tenant_id=tenant.pk, plan_code="growth", now=JAN16)
    assert str(preview.kind) == "upgrade"
    assert [(line.kind, line.amount) for line in preview.lines] == [
        ("proration_credit", -516),
        ("proration_charge", 2581),
    ]
    assert preview.total == 2065
    assert not PendingInvoiceItem.objects.filter(
        subscription__tenant=tenant
    ).exists()  # preview writes nothing

    result = subscription_change(tenant_id=tenant.pk, plan_code="growth", actor=STAFF, now=JAN16)
    sub = result.subscription
    assert sub.plan_version.plan.code == "growth"
    assert (sub.current_period_start, sub.current_period_end) == (JAN1, FEB1)  # same period
    items = list(
        PendingInvoiceItem.objects.filter(subscription=sub).values_list(
            "kind", "amount", "currency"
        )
    )
    assert items == [("proration_credit", -516, "USD"), ("proration_charge", 2581, "USD")]
    assert result.preview.total == preview.total
    event = DomainEvent.objects.get(type="SubscriptionUpgraded", tenant_id=tenant.pk)
    assert event.payload["amount_now"] == 2065


def test_downgrade_is_scheduled_for_the_period_end(plans, new_tenant):
    tenant = new_tenant()
    subscription_create(tenant_id=tenant.pk, plan_code="growth", now=JAN1)
    preview = subscription_change_preview(tenant_id=tenant.pk, plan_code="starter", now=JAN16)
    assert (str(preview.kind), preview.total, preview.effective_at) == ("downgrade", 0, FEB1)
    sub = subscription_change(
        tenant_id=tenant.pk, plan_code="starter", actor=STAFF, now=JAN16
    ).subscription
    assert sub.plan_version.plan.code == "growth"
    assert sub.scheduled_plan_version.plan.code == "starter"
    assert DomainEvent.objects.filter(
        type="SubscriptionDowngradeScheduled", tenant_id=tenant.pk
    ).exists()
    assert subscription_renew(subscription_id=sub.pk, now=FEB1) == 1
    sub.refresh_from_db()
    assert sub.plan_version.plan.code == "starter"
    assert sub.scheduled_plan_version is None
    assert periods(sub)[-1] == (2, FEB1, utc(2027, 3, 1), "starter")


def test_changing_back_cancels_a_scheduled_downgrade(plans, new_tenant):
    tenant = new_tenant()
    subscription_create(tenant_id=tenant.pk, plan_code="growth", now=JAN1)
    subscription_change(tenant_id=tenant.pk, plan_code="starter", actor=STAFF, now=JAN16)
    sub = subscription_change(
        tenant_id=tenant.pk, plan_code="growth", actor=STAFF, now=JAN16
    ).subscription
    assert sub.scheduled_plan_version is None
    subscription_renew(subscription_id=sub.pk, now=FEB1)
    sub.refresh_from_db()
    assert sub.plan_version.plan.code == "growth"


def test_interval_change_starts_a_new_period_now(plans, new_tenant):
    tenant = new_tenant()
    subscription_create(tenant_id=tenant.pk, plan_code="starter", now=JAN1)
    preview = subscription_change_preview(
        tenant_id=tenant.pk, plan_code="starter-yearly", now=JAN16
    )
    assert str(preview.kind) == "interval_change"
    assert [(line.kind, line.amount) for line in preview.lines] == [
        ("proration_credit", -516),
        ("base_fee", 10000),
    ]
    assert preview.total == 9484
    sub = subscription_change(
        tenant_id=tenant.pk, plan_code="starter-yearly", actor=STAFF, now=JAN16
    ).subscription
    assert (sub.billing_anchor, sub.current_period_start, sub.current_period_end) == (
        JAN16,
        JAN16,
        utc(2028, 1, 16),
    )
    assert periods(sub) == [
        (1, JAN1, JAN16, "starter"),
        (2, JAN16, utc(2028, 1, 16), "starter-yearly"),
    ]
    # The new period's fee is billed with its period; only the credit waits as an item.
    assert list(
        PendingInvoiceItem.objects.filter(subscription=sub).values_list("kind", "amount")
    ) == [("proration_credit", -516)]


def test_change_during_trial_applies_now_without_money(new_tenant):
    tenant = new_tenant()
    subscription_create(tenant_id=tenant.pk, plan_code="pro", now=JAN1)
    result = subscription_change(
        tenant_id=tenant.pk, plan_code="business", actor=STAFF, now=JAN16 - timedelta(days=10)
    )
    assert str(result.preview.kind) == "trial_change"
    assert result.preview.total == 0
    assert result.subscription.plan_version.plan.code == "business"
    assert result.subscription.status == SubscriptionStatus.TRIALING
    assert not PendingInvoiceItem.objects.filter(subscription=result.subscription).exists()


def test_impossible_changes_have_specific_codes(plans, new_tenant):
    tenant = new_tenant()
    subscription_create(tenant_id=tenant.pk, plan_code="starter", now=JAN1)
    for plan, code in (("starter", "same_plan"), ("euro", "currency_mismatch")):
        with pytest.raises(Conflict) as refused:
            subscription_change(tenant_id=tenant.pk, plan_code=plan, actor=STAFF, now=JAN16)
        assert refused.value.code == code
    with pytest.raises(InvalidInput) as unknown:
        subscription_change(tenant_id=tenant.pk, plan_code="nope", actor=STAFF)
    assert unknown.value.code == "unknown_plan"


def test_cancel_at_period_end_then_expire_at_renewal(plans, new_tenant):
    tenant = new_tenant()
    sub = subscription_create(tenant_id=tenant.pk, plan_code="starter", now=JAN1)
    sub = subscription_cancel(tenant_id=tenant.pk, actor=STAFF, now=JAN16)
    assert sub.status == SubscriptionStatus.ACTIVE
    assert sub.cancel_at_period_end is True
    with pytest.raises(Conflict) as twice:
        subscription_cancel(tenant_id=tenant.pk, actor=STAFF, now=JAN16)
    assert twice.value.code == "already_cancelled"
    assert subscription_renew(subscription_id=sub.pk, now=FEB1) == 0
    sub.refresh_from_db()
    assert (sub.status, sub.ended_at) == (SubscriptionStatus.EXPIRED, FEB1)
    assert DomainEvent.objects.filter(type="SubscriptionExpired", tenant_id=tenant.pk).exists()
    with pytest.raises(Conflict) as resume:
        subscription_resume(tenant_id=tenant.pk, actor=STAFF, now=FEB1)
    assert resume.value.code == "subscription_not_resumable"


def test_resume_before_the_period_ends_keeps_it_going(plans, new_tenant):
    tenant = new_tenant()
    sub = subscription_create(tenant_id=tenant.pk, plan_code="starter", now=JAN1)
    subscription_cancel(tenant_id=tenant.pk, actor=STAFF, now=JAN16)
    sub = subscription_resume(tenant_id=tenant.pk, actor=STAFF, now=JAN16 + timedelta(days=1))
    assert sub.cancel_at_period_end is False
    assert subscription_renew(subscription_id=sub.pk, now=FEB1) == 1
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ACTIVE
    assert DomainEvent.objects.filter(type="SubscriptionResumed", tenant_id=tenant.pk).exists()


def test_cancel_immediately(plans, new_tenant):
    tenant = new_tenant()
    subscription_create(tenant_id=tenant.pk, plan_code="starter", now=JAN1)
    sub = subscription_cancel(tenant_id=tenant.pk, at_period_end=False, actor=STAFF, now=JAN16)
    assert (sub.status, sub.ended_at) == (SubscriptionStatus.CANCELLED, JAN16)
    with pytest.raises(Conflict) as again:
        subscription_cancel(tenant_id=tenant.pk, actor=STAFF, now=JAN16)
    assert again.value.code == "subscription_not_current"


def test_change_after_the_end_starts_a_new_subscription(plans, new_tenant):
    tenant = new_tenant()
    subscription_create(tenant_id=tenant.pk, plan_code="starter", now=JAN1)
    subscription_cancel(tenant_id=tenant.pk, at_period_end=False, actor=STAFF, now=JAN16)
    result = subscription_change(tenant_id=tenant.pk, plan_code="growth", actor=STAFF, now=FEB1)
    assert str(result.preview.kind) == "restart"
    assert result.preview.total == 5000
    assert result.subscription.status == SubscriptionStatus.ACTIVE
    assert Subscription.objects.filter(tenant=tenant).count() == 2


def test_trial_converts_to_active_on_its_own_anchor(new_tenant):
    tenant = new_tenant()
    sub = subscription_create(tenant_id=tenant.pk, plan_code="pro", now=JAN1)
    trial_end = JAN1 + timedelta(days=14)
    assert subscription_renew(subscription_id=sub.pk, now=trial_end - timedelta(seconds=1)) == 0
    subscription_renew(subscription_id=sub.pk, now=trial_end)
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ACTIVE
    assert (sub.billing_anchor, sub.current_period_start, sub.current_period_end) == (
        trial_end,
        trial_end,
        utc(2027, 2, 15),
    )
    assert [p[0] for p in periods(sub)] == [1, 2]
    assert DomainEvent.objects.filter(type="SubscriptionActivated", tenant_id=tenant.pk).exists()


def test_trial_expires_when_the_plan_needs_a_card_and_none_is_on_file(plans, new_tenant):
    without, with_card = new_tenant(), new_tenant()
    subs = {
        t.pk: subscription_create(tenant_id=t.pk, plan_code="trial-card", now=JAN1)
        for t in (without, with_card)
    }
    subscription_payment_method_set(tenant_id=with_card.pk, present=True)
    for sub in subs.values():
        subscription_renew(subscription_id=sub.pk, now=utc(2027, 1, 8))
    assert Subscription.objects.get(pk=subs[without.pk].pk).status == SubscriptionStatus.EXPIRED
    assert Subscription.objects.get(pk=subs[with_card.pk].pk).status == SubscriptionStatus.ACTIVE


def test_past_due_expires_when_it_outlives_the_grace_period(plans, new_tenant, settings):
    settings.SUBSCRIPTION_PAST_DUE_GRACE_DAYS = 10
    tenant = new_tenant()
    sub = subscription_create(tenant_id=tenant.pk, plan_code="starter", now=JAN1)
    subscription_mark_past_due(subscription_id=sub.pk, now=utc(2027, 1, 5))
    assert subscription_renew(subscription_id=sub.pk, now=utc(2027, 1, 14)) == 0
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.PAST_DUE
    subscription_renew(subscription_id=sub.pk, now=utc(2027, 1, 15))
    sub.refresh_from_db()
    assert (sub.status, sub.ended_at) == (SubscriptionStatus.EXPIRED, utc(2027, 1, 15))


def test_paid_past_due_is_active_again(plans, new_tenant):
    tenant = new_tenant()
    sub = subscription_create(tenant_id=tenant.pk, plan_code="starter", now=JAN1)
    subscription_mark_past_due(subscription_id=sub.pk, now=JAN16)
    sub = subscription_mark_paid(subscription_id=sub.pk)
    assert (sub.status, sub.past_due_since) == (SubscriptionStatus.ACTIVE, None)


def test_new_price_version_grandfathering(plans, new_tenant):
    from core.audit import SYSTEM
    from subscriptions.catalog import catalog_sync
    from tests.subscriptions.conftest import TEST_PLANS

    keep_tenant, move_tenant = new_tenant(), new_tenant()
    Plan.objects.filter(code="growth").update(grandfathering="move_at_renewal")
    keep = subscription_create(tenant_id=keep_tenant.pk, plan_code="starter", now=JAN1)
    move = subscription_create(tenant_id=move_tenant.pk, plan_code="growth", now=JAN1)
    raised = {
        "plans": [
            dict(p, price=p["price"] + 500)
            for p in TEST_PLANS["plans"]
            if p["code"] in ("starter", "growth")
        ]
    }
    raised["plans"][1]["grandfathering"] = "move_at_renewal"
    catalog_sync(data=raised, actor=SYSTEM)
    subscription_renew(subscription_id=keep.pk, now=FEB1)
    subscription_renew(subscription_id=move.pk, now=FEB1)
    keep.refresh_from_db()
    move.refresh_from_db()
    assert (keep.plan_version.version, keep.plan_version.price_amount) == (
        1,
        1000,
    )  # keeps its version
    assert (move.plan_version.version, move.plan_version.price_amount) == (
        2,
        5500,
    )  # moved at renewal
    assert SubscriptionPeriod.objects.get(subscription=move, number=2).plan_version.version == 2

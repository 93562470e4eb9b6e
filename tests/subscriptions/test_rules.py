from __future__ import annotations

import pytest

from core.errors import Conflict
from subscriptions.models import Plan, Subscription, SubscriptionStatus
from subscriptions.rules import ChangeKind, ChangeRefused, cancellation_rule, upgrade_rule
from tests.subscriptions.conftest import utc

pytestmark = pytest.mark.django_db


def version(code):
    return Plan.objects.select_related("current_version__plan").get(code=code).current_version


def sub_on(code: str, status: str = SubscriptionStatus.ACTIVE, **extra) -> Subscription:
    return Subscription(
        plan_version=version(code),
        status=status,
        billing_anchor=utc(2027, 1, 1),
        current_period_start=utc(2027, 1, 1),
        current_period_end=utc(2027, 2, 1),
        **extra,
    )


def test_upgrade_rule(plans):
    assert (
        upgrade_rule.classify(subscription=sub_on("starter"), target=version("growth"))
        == ChangeKind.UPGRADE
    )
    assert (
        upgrade_rule.classify(subscription=sub_on("growth"), target=version("starter"))
        == ChangeKind.DOWNGRADE
    )
    assert (
        upgrade_rule.classify(subscription=sub_on("starter"), target=version("starter-yearly"))
        == ChangeKind.INTERVAL_CHANGE
    )
    trialing = sub_on("growth", SubscriptionStatus.TRIALING, trial_end=utc(2027, 2, 1))
    assert (
        upgrade_rule.classify(subscription=trialing, target=version("starter"))
        == ChangeKind.TRIAL_CHANGE
    )
    ended = sub_on("starter", SubscriptionStatus.EXPIRED)
    assert (
        upgrade_rule.classify(subscription=ended, target=version("starter")) == ChangeKind.RESTART
    )
    assert upgrade_rule.classify(subscription=None, target=version("starter")) == ChangeKind.RESTART


def test_upgrade_rule_refusals(plans):
    with pytest.raises(ChangeRefused) as same:
        upgrade_rule.classify(subscription=sub_on("starter"), target=version("starter"))
    assert same.value.code == "same_plan"
    with pytest.raises(ChangeRefused) as currency:
        upgrade_rule.classify(subscription=sub_on("starter"), target=version("euro"))
    assert currency.value.code == "currency_mismatch"
    scheduled = sub_on("growth", scheduled_plan_version=version("starter"))
    assert (
        upgrade_rule.classify(subscription=scheduled, target=version("growth"))
        == ChangeKind.CANCEL_SCHEDULED
    )


def test_cancellation_rule(plans):
    active = sub_on("starter")
    cancellation_rule.check_cancel(subscription=active, at_period_end=True)
    flagged = sub_on("starter", cancel_at_period_end=True)
    with pytest.raises(Conflict) as twice:
        cancellation_rule.check_cancel(subscription=flagged, at_period_end=True)
    assert twice.value.code == "already_cancelled"
    cancellation_rule.check_cancel(
        subscription=flagged, at_period_end=False
    )  # may still end it now
    cancellation_rule.check_resume(subscription=flagged, now=utc(2027, 1, 20))
    with pytest.raises(Conflict) as late:
        cancellation_rule.check_resume(subscription=flagged, now=utc(2027, 2, 1))
    assert late.value.code == "subscription_not_resumable"
    with pytest.raises(Conflict) as not_cancelled:
        cancellation_rule.check_resume(subscription=active, now=utc(2027, 1, 20))
    assert not_cancelled.value.code == "not_cancelled"
    expired = sub_on("starter", SubscriptionStatus.EXPIRED)
    with pytest.raises(Conflict) as gone:
        cancellation_rule.check_resume(subscription=expired, now=utc(2027, 1, 20))
    assert gone.value.code == "subscription_not_resumable"
    with pytest.raises(Conflict) as cancel_gone:
        cancellation_rule.check_cancel(subscription=expired, at_period_end=True)
    assert cancel_gone.value.code == "subscription_not_current"

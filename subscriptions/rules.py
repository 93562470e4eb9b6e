"""The rules for changing and cancelling a subscription, in one place.

``UpgradeRule`` decides what a plan change is (an upgrade applied now, a downgrade at the
period end, an interval change that starts a new period now) or refuses it;
``CancellationRule`` decides whether a subscription may be cancelled or resumed. Services ask
these and act; views never decide.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from core.errors import Conflict
from subscriptions.models import PlanVersion, Subscription, SubscriptionStatus


class ChangeKind(enum.StrEnum):
    UPGRADE = "upgrade"  # higher price, same interval: now, with proration
    DOWNGRADE = "downgrade"  # lower price, same interval: at the period end
    INTERVAL_CHANGE = "interval_change"  # month <-> year: a new period starts now
    TRIAL_CHANGE = "trial_change"  # any change while trialing: now, nothing to prorate
    CANCEL_SCHEDULED = "cancel_scheduled"  # back to the current plan: drop the scheduled change
    RESTART = "restart"  # the subscription has ended: a new one starts now


class ChangeRefused(Conflict):
    default_code = "change_refused"


@dataclass(frozen=True)
class UpgradeRule:
    def classify(self, *, subscription: Subscription | None, target: PlanVersion) -> ChangeKind:
        if subscription is None or not subscription.is_current:
            return ChangeKind.RESTART
        current = subscription.plan_version
        if target.currency != current.currency:
            raise ChangeRefused(
                f"The plan is priced in {target.currency}, the subscription in {current.currency}.",
                code="currency_mismatch",
            )
        if target.plan_id == current.plan_id:
            if subscription.scheduled_plan_version_id is not None:
                return ChangeKind.CANCEL_SCHEDULED
            raise ChangeRefused("The subscription is already on this plan.", code="same_plan")
        if subscription.status == SubscriptionStatus.TRIALING:
            return ChangeKind.TRIAL_CHANGE
        if target.interval != current.interval:
            return ChangeKind.INTERVAL_CHANGE
        if target.price_amount >= current.price_amount:
            return ChangeKind.UPGRADE
        return ChangeKind.DOWNGRADE


@dataclass(frozen=True)
class CancellationRule:
    def check_cancel(self, *, subscription: Subscription, at_period_end: bool) -> None:
        if not subscription.is_current:
            raise Conflict(
                f"The subscription is {subscription.status}.", code="subscription_not_current"
            )
        if at_period_end and subscription.cancel_at_period_end:
            raise Conflict(
                "The subscription is already cancelled at the period end.", code="already_cancelled"
            )

    def check_resume(self, *, subscription: Subscription, now: datetime) -> None:
        if not subscription.is_current:
            raise Conflict(
                f"A subscription that is {subscription.status} cannot be resumed.",
                code="subscription_not_resumable",
            )
        if not subscription.cancel_at_period_end:
            raise Conflict("The subscription is not cancelled.", code="not_cancelled")
        if now >= subscription.current_period_end:
            raise Conflict("The period has ended.", code="subscription_not_resumable")


upgrade_rule = UpgradeRule()
cancellation_rule = CancellationRule()

"""Reactions to domain events: start a subscription at signup, keep the access cache true."""

from __future__ import annotations

from core.events import subscriber
from core.models import DomainEvent
from subscriptions.access import subscription_access_invalidate
from subscriptions.models import Subscription
from subscriptions.services import subscription_create

SUBSCRIPTION_EVENTS = (
    "SubscriptionCreated",
    "SubscriptionUpgraded",
    "SubscriptionDowngradeScheduled",
    "SubscriptionScheduledChangeCancelled",
    "SubscriptionCancelled",
    "SubscriptionResumed",
    "SubscriptionRenewed",
    "SubscriptionExpired",
    "SubscriptionActivated",
    "SubscriptionPastDue",
    "SubscriptionReactivated",
    "SubscriptionTrialExtended",
)


@subscriber("TenantCreated")
def start_subscription(event: DomainEvent) -> None:
    """A new tenant gets its subscription: the plan it signed up for, or ``free``.

    Idempotent (the outbox may deliver twice): a tenant that has one already is left alone.
    """
    if event.tenant_id is None or Subscription.objects.filter(tenant_id=event.tenant_id).exists():
        return
    subscription_create(tenant_id=event.tenant_id, plan_code=event.payload.get("plan") or None)


@subscriber(*SUBSCRIPTION_EVENTS)
def invalidate_access(event: DomainEvent) -> None:
    if event.tenant_id is not None:
        subscription_access_invalidate(tenant_id=event.tenant_id)

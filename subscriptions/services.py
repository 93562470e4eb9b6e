"""Every write to subscriptions. Each service is atomic, audited and records a domain event.

Time is passed in as ``now`` where a test or a catch-up run needs to control it; it defaults
to ``timezone.now()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import SYSTEM, Actor, audit_record
from core.errors import Conflict, InvalidInput, NotFound
from core.events import event_record
from subscriptions.models import (
    CURRENT_STATUSES,
    Grandfathering,
    PendingInvoiceItem,
    PendingItemKind,
    Plan,
    PlanVersion,
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
)
from subscriptions.periods import period_bounds, prorate, seconds_between
from subscriptions.rules import ChangeKind, cancellation_rule, upgrade_rule

log = structlog.get_logger(__name__)

DEFAULT_PLAN = "free"


def past_due_grace() -> timedelta:
    return timedelta(days=settings.SUBSCRIPTION_PAST_DUE_GRACE_DAYS)


# --- helpers ------------------------------------------------------------------------------


def _now(now: datetime | None) -> datetime:
    """Whole seconds: periods and proration are computed to the second, like Stripe."""
    return (now or timezone.now()).replace(microsecond=0)


def _payload(sub: Subscription, **extra: Any) -> dict[str, Any]:
    return {
        "subscription_id": sub.pk,
        "tenant_id": sub.tenant_id,
        "plan": sub.plan_version.plan.code,
        "plan_version": sub.plan_version.version,
        "status": sub.status,
        "current_period_start": sub.current_period_start.isoformat(),
        "current_period_end": sub.current_period_end.isoformat(),
        **extra,
    }


def _record(
    sub: Subscription, *, actor: Actor, action: str, event: str, reason: str = "", **data: Any
) -> None:
    audit_record(
        actor=actor,
        action=action,
        tenant_id=sub.tenant_id,
        target_type="subscription",
        target_id=sub.pk,
        reason=reason,
        data=data,
    )
    event_record(type=event, tenant_id=sub.tenant_id, payload=_payload(sub, **data))


def plan_version_for(code: str) -> PlanVersion:
    plan = Plan.objects.select_related("current_version__plan").filter(code=code).first()
    if plan is None or plan.current_version is None:
        raise InvalidInput(
            f"There is no plan '{code}'.", code="unknown_plan", details={"plan": code}
        )
    return plan.current_version


def _current_locked(tenant_id: int) -> Subscription | None:
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("plan_version__plan")
        .filter(tenant_id=tenant_id, status__in=CURRENT_STATUSES)
        .first()
    )


def _latest_locked(tenant_id: int) -> Subscription | None:
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("plan_version__plan")
        .filter(tenant_id=tenant_id)
        .order_by("-created_at", "-id")
        .first()
    )


def _open_period(
    sub: Subscription, *, start: datetime, end: datetime, is_trial: bool = False
) -> SubscriptionPeriod:
    last = sub.periods.order_by("-number").values_list("number", flat=True).first() or 0
    return SubscriptionPeriod.objects.create(
        subscription=sub,
        number=last + 1,
        start=start,
        end=end,
        plan_version=sub.plan_version,
        is_trial=is_trial,
    )


def _new_subscription(
    *, tenant_id: int, version: PlanVersion, now: datetime, with_trial: bool
) -> Subscription:
    trial = with_trial and version.trial_days > 0
    trial_end: datetime | None = None
    if trial:
        trial_end = now + timedelta(days=version.trial_days)
        # While trialing, the anchor is the trial end: billing periods start there.
        start, end, anchor = now, trial_end, trial_end
    else:
        start, end = period_bounds(now, version.interval, 0)
        anchor = start
    try:
        with transaction.atomic():
            sub = Subscription.objects.create(
                tenant_id=tenant_id,
                plan_version=version,
                status=SubscriptionStatus.TRIALING if trial else SubscriptionStatus.ACTIVE,
                billing_anchor=anchor,
                anchor_periods=0,
                current_period_start=start,
                current_period_end=end,
                trial_end=trial_end,
            )
    except IntegrityError as exc:
        raise Conflict(
            "The tenant already has a current subscription.", code="subscription_exists"
        ) from exc
    _open_period(sub, start=start, end=end, is_trial=trial)
    return sub


# --- create -------------------------------------------------------------------------------


@transaction.atomic
def subscription_create(
    *,
    tenant_id: int,
    plan_code: str | None = None,
    actor: Actor = SYSTEM,
    now: datetime | None = None,
) -> Subscription:
    """Start a tenant's subscription: on ``plan_code`` with its trial, or on ``free``."""
    now = _now(now)
    version = plan_version_for(plan_code or DEFAULT_PLAN)
    if _current_locked(tenant_id) is not None:
        raise Conflict("The tenant already has a current subscription.", code="subscription_exists")
    sub = _new_subscription(tenant_id=tenant_id, version=version, now=now, with_trial=True)
    _record(
        sub,
        actor=actor,
        action="subscription.create",
        event="SubscriptionCreated",
        trial_end=sub.trial_end.isoformat() if sub.trial_end else None,
    )
    return sub


# --- change plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewLine:
    kind: str
    description: str
    amount: int
    period_start: datetime
    period_end: datetime


@dataclass(frozen=True)
class ChangePreview:
    kind: ChangeKind
    plan: str
    effective_at: datetime
    currency: str
    lines: list[PreviewLine] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


def _preview(sub: Subscription | None, target: PlanVersion, now: datetime) -> ChangePreview:
    kind = upgrade_rule.classify(subscription=sub, target=target)
    lines: list[PreviewLine] = []
    effective = now
    if kind == ChangeKind.RESTART:
        start, end = period_bounds(now, target.interval, 0)
        lines.append(
            PreviewLine(
                "base_fee",
                f"{target.plan.name} from {start:%Y-%m-%d} to {end:%Y-%m-%d}",
                target.price_amount,
                start,
                end,
            )
        )
    elif sub is not None and kind in (ChangeKind.UPGRADE, ChangeKind.INTERVAL_CHANGE):
        current = sub.plan_version
        period = seconds_between(sub.current_period_start, sub.current_period_end)
        remaining = max(0, seconds_between(now, sub.current_period_end))
        lines.append(
            PreviewLine(
                PendingItemKind.PRORATION_CREDIT,
                f"Unused time on {current.plan.name}",
                -prorate(current.price_amount, remaining_seconds=remaining, period_seconds=period),
                now,
                sub.current_period_end,
            )
        )
        if kind == ChangeKind.UPGRADE:
            lines.append(
                PreviewLine(
                    PendingItemKind.PRORATION_CHARGE,
                    f"Remaining time on {target.plan.name}",
                    prorate(
                        target.price_amount, remaining_seconds=remaining, period_seconds=period
                    ),
                    now,
                    sub.current_period_end,
                )
            )
        else:
            start, end = period_bounds(now, target.interval, 0)
            lines.append(
                PreviewLine(
                    "base_fee",
                    f"{target.plan.name} from {start:%Y-%m-%d} to {end:%Y-%m-%d}",
                    target.price_amount,
                    start,
                    end,
                )
            )
    elif sub is not None and kind == ChangeKind.DOWNGRADE:
        effective = sub.current_period_end
    return ChangePreview(
        kind=kind,
        plan=target.plan.code,
        effective_at=effective,
        currency=target.currency,
        lines=lines,
    )


def subscription_change_preview(
    *, tenant_id: int, plan_code: str, now: datetime | None = None
) -> ChangePreview:
    """What ``subscription_change`` would bill now, computed the same way, writing nothing."""
    now = _now(now)
    target = plan_version_for(plan_code)
    sub = (
        Subscription.objects.select_related("plan_version__plan")
        .filter(tenant_id=tenant_id, status__in=CURRENT_STATUSES)
        .first()
    )
    return _preview(sub, target, now)


@dataclass(frozen=True)
class ChangeResult:
    subscription: Subscription
    preview: ChangePreview


@transaction.atomic
def subscription_change(
    *, tenant_id: int, plan_code: str, actor: Actor, reason: str = "", now: datetime | None = None
) -> ChangeResult:
    now = _now(now)
    target = plan_version_for(plan_code)
    sub = _current_locked(tenant_id)
    preview = _preview(sub, target, now)
    kind = preview.kind

    if kind == ChangeKind.RESTART:
        sub = _new_subscription(tenant_id=tenant_id, version=target, now=now, with_trial=False)
        _record(
            sub,
            actor=actor,
            action="subscription.create",
            event="SubscriptionCreated",
            reason=reason,
            restarted=True,
        )
        return ChangeResult(sub, preview)
    assert sub is not None
    before = f"{sub.plan_version.plan.code} v{sub.plan_version.version}"

    if kind == ChangeKind.CANCEL_SCHEDULED:
        sub.scheduled_plan_version = None
        sub.save(update_fields=["scheduled_plan_version", "updated_at"])
        _record(
            sub,
            actor=actor,
            action="subscription.scheduled_change_cancel",
            event="SubscriptionScheduledChangeCancelled",
            reason=reason,
        )
        return ChangeResult(sub, preview)

    if kind == ChangeKind.DOWNGRADE:
        sub.scheduled_plan_version = target
        sub.save(update_fields=["scheduled_plan_version", "updated_at"])
        _record(
            sub,
            actor=actor,
            action="subscription.downgrade_schedule",
            event="SubscriptionDowngradeScheduled",
            reason=reason,
            to_plan=target.plan.code,
            effective_at=sub.current_period_end.isoformat(),
        )
        return ChangeResult(sub, preview)

    for line in preview.lines:
        if line.kind in (PendingItemKind.PRORATION_CREDIT, PendingItemKind.PRORATION_CHARGE):
            PendingInvoiceItem.objects.create(
                subscription=sub,
                kind=line.kind,
                description=line.description,
                amount=line.amount,
                currency=preview.currency,
                period_start=line.period_start,
                period_end=line.period_end,
                plan_version=target
                if line.kind == PendingItemKind.PRORATION_CHARGE
                else sub.plan_version,
            )
    sub.plan_version = target
    sub.scheduled_plan_version = None
    if kind == ChangeKind.INTERVAL_CHANGE:
        # The current period closes now and a new one, on the new interval, starts now.
        SubscriptionPeriod.objects.filter(subscription=sub, start=sub.current_period_start).update(
            end=now
        )
        start, end = period_bounds(now, target.interval, 0)
        sub.billing_anchor, sub.anchor_periods = now, 0
        sub.current_period_start, sub.current_period_end = start, end
        sub.save()
        _open_period(sub, start=start, end=end)
    else:
        sub.save()
    _record(
        sub,
        actor=actor,
        action="subscription.upgrade",
        event="SubscriptionUpgraded",
        reason=reason,
        kind=str(kind),
        from_plan=before,
        amount_now=preview.total,
        currency=preview.currency,
    )
    return ChangeResult(sub, preview)


# --- cancel / resume ----------------------------------------------------------------------


def _tenant_subscription_locked(tenant_id: int) -> Subscription:
    sub = _current_locked(tenant_id) or _latest_locked(tenant_id)
    if sub is None:
        raise NotFound("The tenant has no subscription.", code="subscription_not_found")
    return sub


@transaction.atomic
def subscription_cancel(
    *,
    tenant_id: int,
    at_period_end: bool = True,
    actor: Actor,
    reason: str = "",
    now: datetime | None = None,
) -> Subscription:
    now = _now(now)
    sub = _tenant_subscription_locked(tenant_id)
    cancellation_rule.check_cancel(subscription=sub, at_period_end=at_period_end)
    sub.cancelled_at = now
    if at_period_end:
        sub.cancel_at_period_end = True
    else:
        sub.status = SubscriptionStatus.CANCELLED
        sub.ended_at = now
        sub.scheduled_plan_version = None
    sub.save()
    _record(
        sub,
        actor=actor,
        action="subscription.cancel",
        event="SubscriptionCancelled",
        reason=reason,
        at_period_end=at_period_end,
    )
    return sub


@transaction.atomic
def subscription_resume(
    *, tenant_id: int, actor: Actor, reason: str = "", now: datetime | None = None
) -> Subscription:
    now = _now(now)
    sub = _tenant_subscription_locked(tenant_id)
    cancellation_rule.check_resume(subscription=sub, now=now)
    sub.cancel_at_period_end = False
    sub.cancelled_at = None
    sub.save(update_fields=["cancel_at_period_end", "cancelled_at", "updated_at"])
    _record(
        sub, actor=actor, action="subscription.resume", event="SubscriptionResumed", reason=reason
    )
    return sub


# --- renewals, trials, expiry -------------------------------------------------------------


def _expire(sub: Subscription, *, at: datetime, reason: str) -> None:
    sub.status = SubscriptionStatus.EXPIRED
    sub.ended_at = at
    sub.scheduled_plan_version = None
    sub.save()
    _record(
        sub, actor=SYSTEM, action="subscription.expire", event="SubscriptionExpired", reason=reason
    )


def _renewal_version(sub: Subscription) -> PlanVersion:
    if sub.scheduled_plan_version_id is not None:
        assert sub.scheduled_plan_version is not None
        return sub.scheduled_plan_version
    plan = sub.plan_version.plan
    if plan.grandfathering == Grandfathering.MOVE_AT_RENEWAL and plan.current_version_id not in (
        None,
        sub.plan_version_id,
    ):
        assert plan.current_version is not None
        return plan.current_version
    return sub.plan_version


def _end_trial(sub: Subscription) -> None:
    assert sub.trial_end is not None
    plan = sub.plan_version.plan
    if plan.requires_payment_method and not sub.has_payment_method:
        _expire(sub, at=sub.trial_end, reason="trial ended without a payment method")
        return
    sub.status = SubscriptionStatus.ACTIVE
    sub.billing_anchor, sub.anchor_periods = sub.trial_end, 0
    sub.current_period_start, sub.current_period_end = period_bounds(
        sub.trial_end, sub.plan_version.interval, 0
    )
    sub.save()
    period = _open_period(sub, start=sub.current_period_start, end=sub.current_period_end)
    _record(
        sub,
        actor=SYSTEM,
        action="subscription.trial_convert",
        event="SubscriptionActivated",
        period_number=period.number,
    )


def _renew_once(sub: Subscription) -> None:
    version = _renewal_version(sub)
    ended = sub.current_period_end
    previous = sub.plan_version
    if version.interval != sub.plan_version.interval:
        sub.billing_anchor, sub.anchor_periods = ended, 0
    else:
        sub.anchor_periods += 1
    sub.plan_version = version
    sub.scheduled_plan_version = None
    sub.current_period_start, sub.current_period_end = period_bounds(
        sub.billing_anchor, version.interval, sub.anchor_periods
    )
    if sub.current_period_start != ended:  # never a gap or an overlap between periods
        raise RuntimeError(
            f"subscription {sub.pk}: period would start {sub.current_period_start}, not {ended}"
        )
    sub.save()
    period = _open_period(sub, start=sub.current_period_start, end=sub.current_period_end)
    _record(
        sub,
        actor=SYSTEM,
        action="subscription.renew",
        event="SubscriptionRenewed",
        period_number=period.number,
        changed_from=None
        if previous.pk == version.pk
        else f"{previous.plan.code} v{previous.version}",
    )


@transaction.atomic
def subscription_renew(*, subscription_id: int, now: datetime | None = None) -> int:
    """Bring one subscription up to ``now``: end its trial, renew each period that has ended
    (one renewal per missed period, none skipped), or expire it. Returns the renewals made.

    Holds the row lock throughout, so two workers running it at once renew once.
    """
    now = _now(now)
    sub = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("plan_version__plan__current_version", "scheduled_plan_version__plan")
        .filter(pk=subscription_id)
        .first()
    )
    if sub is None:
        raise NotFound("No such subscription.", code="subscription_not_found")
    renewals = 0
    while sub.is_current:
        if sub.status == SubscriptionStatus.PAST_DUE and sub.past_due_since is not None:
            deadline = sub.past_due_since + past_due_grace()
            if deadline <= now:
                _expire(sub, at=deadline, reason="past due beyond the grace period")
                break
        if sub.current_period_end > now:
            break
        if sub.status == SubscriptionStatus.TRIALING:
            _end_trial(sub)
            continue
        if sub.cancel_at_period_end:
            _expire(sub, at=sub.current_period_end, reason="cancelled at period end")
            break
        _renew_once(sub)
        renewals += 1
    return renewals


def subscriptions_due(*, now: datetime) -> list[int]:
    """Ids of current subscriptions with a period (or trial) that has ended or a grace that ran out."""
    period_over = Subscription.objects.filter(
        status__in=CURRENT_STATUSES, current_period_end__lte=now
    )
    grace_over = Subscription.objects.filter(
        status=SubscriptionStatus.PAST_DUE, past_due_since__lte=now - past_due_grace()
    )
    return sorted(
        set(period_over.values_list("pk", flat=True)) | set(grace_over.values_list("pk", flat=True))
    )


def subscriptions_renew_due(*, now: datetime | None = None) -> dict[str, int]:
    """The beat sweep: every due subscription in its own transaction; one failure never stops
    the others (it is logged and picked up by the next run)."""
    now = _now(now)
    done = {"subscriptions": 0, "renewals": 0, "failed": 0}
    for subscription_id in subscriptions_due(now=now):
        try:
            done["renewals"] += subscription_renew(subscription_id=subscription_id, now=now)
            done["subscriptions"] += 1
        except Exception:
            done["failed"] += 1
            log.exception("subscription_renew_failed", subscription_id=subscription_id)
    return done


# --- payment state (called by billing) ----------------------------------------------------


def _locked(subscription_id: int) -> Subscription:
    sub = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("plan_version__plan")
        .filter(pk=subscription_id)
        .first()
    )
    if sub is None:
        raise NotFound("No such subscription.", code="subscription_not_found")
    return sub


@transaction.atomic
def subscription_mark_past_due(
    *, subscription_id: int, actor: Actor = SYSTEM, now: datetime | None = None
) -> Subscription:
    sub = _locked(subscription_id)
    if sub.status == SubscriptionStatus.PAST_DUE:
        return sub
    if sub.status != SubscriptionStatus.ACTIVE:
        raise Conflict(
            f"A subscription that is {sub.status} cannot become past due.",
            code="invalid_transition",
        )
    sub.status = SubscriptionStatus.PAST_DUE
    sub.past_due_since = _now(now)
    sub.save(update_fields=["status", "past_due_since", "updated_at"])
    _record(sub, actor=actor, action="subscription.past_due", event="SubscriptionPastDue")
    return sub


@transaction.atomic
def subscription_mark_paid(*, subscription_id: int, actor: Actor = SYSTEM) -> Subscription:
    sub = _locked(subscription_id)
    if sub.status != SubscriptionStatus.PAST_DUE:
        return sub
    sub.status = SubscriptionStatus.ACTIVE
    sub.past_due_since = None
    sub.save(update_fields=["status", "past_due_since", "updated_at"])
    _record(sub, actor=actor, action="subscription.reactivate", event="SubscriptionReactivated")
    return sub


@transaction.atomic
def subscription_payment_method_set(
    *, tenant_id: int, present: bool, actor: Actor = SYSTEM
) -> Subscription | None:
    sub = _current_locked(tenant_id)
    if sub is None or sub.has_payment_method == present:
        return sub
    sub.has_payment_method = present
    sub.save(update_fields=["has_payment_method", "updated_at"])
    audit_record(
        actor=actor,
        action="subscription.payment_method",
        tenant_id=tenant_id,
        target_type="subscription",
        target_id=sub.pk,
        data={"present": present},
    )
    return sub


@transaction.atomic
def subscription_extend_trial(
    *, subscription_id: int, days: int, actor: Actor, reason: str
) -> Subscription:
    if days < 1:
        raise InvalidInput("Extend by at least one day.", code="invalid_days")
    sub = _locked(subscription_id)
    if sub.status != SubscriptionStatus.TRIALING or sub.trial_end is None:
        raise Conflict(
            "Only a trialing subscription can have its trial extended.", code="not_trialing"
        )
    old_end = sub.trial_end
    sub.trial_end = old_end + timedelta(days=days)
    sub.current_period_end = sub.trial_end
    sub.billing_anchor = sub.trial_end
    sub.save()
    SubscriptionPeriod.objects.filter(subscription=sub, start=sub.current_period_start).update(
        end=sub.trial_end
    )
    _record(
        sub,
        actor=actor,
        action="subscription.extend_trial",
        event="SubscriptionTrialExtended",
        reason=reason,
        days=days,
        trial_end=sub.trial_end.isoformat(),
    )
    return sub


@transaction.atomic
def subscription_expire(
    *, subscription_id: int, actor: Actor = SYSTEM, reason: str
) -> Subscription:
    """End a current subscription now (billing: the last payment retry failed)."""
    sub = _locked(subscription_id)
    if not sub.is_current:
        return sub
    sub.status = SubscriptionStatus.EXPIRED
    sub.ended_at = timezone.now()
    sub.scheduled_plan_version = None
    sub.save()
    _record(
        sub, actor=actor, action="subscription.expire", event="SubscriptionExpired", reason=reason
    )
    return sub


@transaction.atomic
def subscription_reactivate(
    *, subscription_id: int, actor: Actor = SYSTEM, reason: str
) -> Subscription:
    """Bring back a subscription that billing expired, once its invoice is paid after all.

    It continues on its own anchor: the renewal sweep then renews (and billing invoices) each
    period missed meanwhile. Refused when the tenant has started another subscription since.
    """
    sub = _locked(subscription_id)
    if sub.status != SubscriptionStatus.EXPIRED:
        return sub
    sub.status = SubscriptionStatus.ACTIVE
    sub.ended_at = None
    sub.past_due_since = None
    sub.cancel_at_period_end = False
    sub.cancelled_at = None
    try:
        with transaction.atomic():
            sub.save()
    except IntegrityError as exc:
        raise Conflict(
            "The tenant has another current subscription.", code="subscription_exists"
        ) from exc
    _record(
        sub,
        actor=actor,
        action="subscription.reactivate",
        event="SubscriptionReactivated",
        reason=reason,
    )
    return sub

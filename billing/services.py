"""Every write of billing: invoice generation, numbering, payments, dunning, voids, credits.

- One invoice per subscription period: ``Invoice.period`` is unique, and generation locks
  the period row, so any number of runs in any number of processes makes one.
- Numbers are gapless per year (``INV-2026-000001``): taken only at finalization, under a
  row lock on the year's sequence, in the transaction that finalizes the invoice.
- Amounts are integers of minor units, each line rounded once, half-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.gateways import get_gateway
from billing.models import (
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceNumberSequence,
    InvoiceStatus,
    LineKind,
    Payment,
    PaymentStatus,
)
from core.audit import SYSTEM, Actor, audit_record
from core.errors import Conflict, InvalidInput, NotFound
from core.events import event_record
from subscriptions.models import (
    PendingInvoiceItem,
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
)
from subscriptions.periods import round_half_up
from subscriptions.services import (
    subscription_expire,
    subscription_mark_paid,
    subscription_mark_past_due,
    subscription_reactivate,
)
from tenants.models import Tenant, TenantStatus
from tenants.services import tenant_activate, tenant_suspend
from usage.selectors import usage_period_totals

log = structlog.get_logger(__name__)


def _record(
    invoice: Invoice, *, actor: Actor, action: str, event: str | None, reason: str = "", **data: Any
) -> None:
    audit_record(
        actor=actor,
        action=action,
        tenant_id=invoice.tenant_id,
        target_type="invoice",
        target_id=invoice.number or invoice.pk,
        reason=reason,
        data=data,
    )
    if event:
        event_record(
            type=event,
            tenant_id=invoice.tenant_id,
            payload={
                "invoice_id": invoice.pk,
                "number": invoice.number,
                "status": invoice.status,
                "total": invoice.total,
                "amount_due": invoice.amount_due,
                "currency": invoice.currency,
                **data,
            },
        )


# --- generation -----------------------------------------------------------------------------


def overage_amount(*, used: int, limit: int, unit_price: int, unit_size: int) -> tuple[int, int]:
    """(units over the limit, amount) for one metric: rounded once, half-up."""
    over = max(0, used - limit)
    return over, round_half_up(over * unit_price, unit_size)


def _tax_rate_bps(tenant: Tenant) -> int:
    return int((tenant.config or {}).get("tax_rate_bps", 0))


def _period_lines(
    period: SubscriptionPeriod, pending: list[PendingInvoiceItem], usage: dict[str, int]
) -> list[InvoiceLine]:
    """The lines of one period's invoice: the base fee of the period's plan version, the
    pending items created before the period ended, and overage per metric (each rounded once,
    half-up). Pure: the callers read ``pending`` and ``usage`` (one period, or a batch)."""
    version = period.plan_version
    lines = [
        InvoiceLine(
            kind=LineKind.BASE_FEE,
            description=f"{version.plan.name} ({period.start:%Y-%m-%d} to {period.end:%Y-%m-%d})",
            quantity=1,
            unit_amount=version.price_amount,
            amount=version.price_amount,
            period_start=period.start,
            period_end=period.end,
        )
    ]
    lines += [
        InvoiceLine(
            kind=item.kind,
            description=item.description,
            quantity=1,
            unit_amount=item.amount,
            amount=item.amount,
            period_start=item.period_start,
            period_end=item.period_end,
            pending_item=item,
        )
        for item in pending
        if item.created_at < period.end
    ]
    for quota in sorted(version.quotas.all(), key=lambda q: q.metric):
        if quota.overage_unit_price is None or quota.limit is None:
            continue
        over, amount = overage_amount(
            used=usage.get(quota.metric, 0),
            limit=quota.limit,
            unit_price=quota.overage_unit_price,
            unit_size=quota.overage_unit_size,
        )
        if over:
            lines.append(
                InvoiceLine(
                    kind=LineKind.OVERAGE,
                    metric=quota.metric,
                    description=f"{quota.metric}: {over} over the {quota.limit} included",
                    quantity=over,
                    unit_amount=quota.overage_unit_price,
                    unit_size=quota.overage_unit_size,
                    amount=amount,
                    period_start=period.start,
                    period_end=period.end,
                )
            )
    return lines


def _totals(invoice: Invoice, lines: list[InvoiceLine]) -> None:
    invoice.subtotal = sum(line.amount for line in lines)
    invoice.tax = (
        round_half_up(invoice.subtotal * invoice.tax_rate_bps, 10_000)
        if invoice.subtotal > 0
        else 0
    )
    invoice.total = invoice.subtotal + invoice.tax
    invoice.amount_due = max(0, invoice.total - invoice.amount_paid)


@transaction.atomic
def invoice_generate_for_period(*, period_id: int, finalize: bool = True) -> Invoice | None:
    """The invoice of one closed subscription period: made once, whoever asks how often."""
    period = (
        SubscriptionPeriod.objects.select_for_update(of=("self",))
        .select_related("subscription__tenant", "plan_version__plan")
        .filter(pk=period_id)
        .first()
    )
    if period is None:
        raise NotFound("No such period.", code="period_not_found")
    existing = Invoice.objects.filter(period=period).first()
    if existing is not None or period.is_trial:
        return existing
    sub = period.subscription
    invoice = Invoice(
        tenant=sub.tenant,
        subscription=sub,
        period=period,
        currency=period.plan_version.currency,
        period_start=period.start,
        period_end=period.end,
        tax_rate_bps=_tax_rate_bps(sub.tenant),
    )
    pending = list(
        PendingInvoiceItem.objects.filter(subscription=sub, invoiced_at__isnull=True).order_by(
            "created_at", "id"
        )
    )
    usage = usage_period_totals(tenant_id=sub.tenant_id, period_start=period.start)
    lines = _period_lines(period, pending, usage)
    _totals(invoice, lines)
    try:
        with transaction.atomic():
            invoice.save()
    except IntegrityError:  # a concurrent run made it first
        return Invoice.objects.get(period=period)
    for line in lines:
        line.invoice = invoice
    InvoiceLine.objects.bulk_create(lines)
    PendingInvoiceItem.objects.filter(
        pk__in=[line.pending_item_id for line in lines if line.pending_item_id]
    ).update(invoiced_at=timezone.now())
    _record(invoice, actor=SYSTEM, action="invoice.create", event=None, period=period.number)
    if finalize:
        invoice_finalize(invoice_id=invoice.pk)
        invoice.refresh_from_db()
    return invoice


def periods_to_invoice(*, now: datetime, limit: int | None = None) -> list[int]:
    """Closed, non-trial periods with no invoice yet, oldest first (catches up after downtime)."""
    rows = (
        SubscriptionPeriod.objects.filter(end__lte=now, is_trial=False, invoice__isnull=True)
        .order_by("end", "id")
        .values_list("pk", flat=True)
    )
    return list(rows[:limit] if limit else rows)


BATCH_SIZE = 500


def invoices_generate_due(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> dict[str, int]:
    """The beat run: every closed period gets its invoice, in set-based batches.

    Each batch locks its periods with SKIP LOCKED (so concurrent workers share the work and
    never invoice a period twice), builds every invoice in memory from a handful of queries,
    and takes a contiguous block of numbers under one lock of the year's sequence. A batch
    that fails is retried period by period, so one bad period never stops the others (it is
    logged, and the next run tries it again).
    """
    now = now or timezone.now()
    done = {"invoiced": 0, "failed": 0}
    try:
        from usage.services import usage_flush

        usage_flush()  # overage needs the counters that are still in Redis
    except Exception:
        log.exception("usage_flush_before_invoicing_failed")
    due = periods_to_invoice(now=now)
    for start in range(0, len(due), batch_size):
        chunk = due[start : start + batch_size]
        try:
            done["invoiced"] += invoices_generate_batch(period_ids=chunk)
        except Exception:
            log.exception("invoice_batch_failed", periods=len(chunk))
            for period_id in chunk:
                try:
                    if invoice_generate_for_period(period_id=period_id) is not None:
                        done["invoiced"] += 1
                except Exception:
                    done["failed"] += 1
                    log.exception("invoice_generation_failed", period_id=period_id)
    return done


@transaction.atomic
def invoices_generate_batch(*, period_ids: list[int]) -> int:
    """Invoice and finalize many closed periods at once; returns how many were invoiced."""
    from django.db.models import Prefetch

    from subscriptions.models import Quota
    from usage.metrics import GAUGES
    from usage.models import UsageRecord

    periods = list(
        SubscriptionPeriod.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(pk__in=period_ids, invoice__isnull=True, is_trial=False)
        .select_related("subscription__tenant", "plan_version__plan")
        .prefetch_related(
            Prefetch("plan_version__quotas", queryset=Quota.objects.order_by("metric"))
        )
        .order_by("end", "id")
    )
    if not periods:
        return 0
    sub_ids = {p.subscription_id for p in periods}
    pending: dict[int, list[PendingInvoiceItem]] = {}
    for item in PendingInvoiceItem.objects.filter(
        subscription_id__in=sub_ids, invoiced_at__isnull=True
    ).order_by("created_at", "id"):
        pending.setdefault(item.subscription_id, []).append(item)
    usage: dict[tuple[int, datetime], dict[str, int]] = {}
    for row in UsageRecord.objects.filter(
        tenant_id__in={p.subscription.tenant_id for p in periods},
        period_start__in={p.start for p in periods},
    ).values("tenant_id", "period_start", "metric", "quantity"):
        bucket = usage.setdefault((row["tenant_id"], row["period_start"]), {})
        if row["metric"] in GAUGES:
            bucket[row["metric"]] = max(bucket.get(row["metric"], 0), row["quantity"])
        else:
            bucket[row["metric"]] = bucket.get(row["metric"], 0) + row["quantity"]

    now = timezone.now()
    invoices: list[Invoice] = []
    all_lines: list[list[InvoiceLine]] = []
    used_items: list[int] = []
    for period in periods:
        sub = period.subscription
        version = period.plan_version
        lines = _period_lines(
            period, pending.get(sub.pk, []), usage.get((sub.tenant_id, period.start), {})
        )
        used_items += [line.pending_item_id for line in lines if line.pending_item_id]
        invoice = Invoice(
            tenant=sub.tenant,
            subscription=sub,
            period=period,
            currency=version.currency,
            period_start=period.start,
            period_end=period.end,
            tax_rate_bps=_tax_rate_bps(sub.tenant),
        )
        _totals(invoice, lines)
        invoices.append(invoice)
        all_lines.append(lines)

    # Numbers: one lock of the year's sequence, a contiguous block for this batch.
    year = now.year
    InvoiceNumberSequence.objects.get_or_create(year=year)
    seq = InvoiceNumberSequence.objects.select_for_update().get(year=year)
    collect = get_gateway().name != "manual"
    for offset, invoice in enumerate(invoices, start=1):
        invoice.number = f"INV-{year}-{seq.last_number + offset:06d}"
        invoice.finalized_at = now
        invoice.due_at = now + timedelta(days=settings.BILLING_INVOICE_DUE_DAYS)
        if invoice.amount_due == 0:
            invoice.status, invoice.paid_at = InvoiceStatus.PAID, now
        else:
            invoice.status = InvoiceStatus.OPEN
            invoice.next_payment_attempt_at = now if collect else None
    seq.last_number += len(invoices)
    seq.save(update_fields=["last_number"])

    Invoice.objects.bulk_create(invoices)
    for invoice, lines in zip(invoices, all_lines, strict=True):
        for line in lines:
            line.invoice = invoice
    InvoiceLine.objects.bulk_create([line for lines in all_lines for line in lines])
    if used_items:
        PendingInvoiceItem.objects.filter(pk__in=used_items).update(invoiced_at=now)

    from core.audit import audit_record_many
    from core.events import events_record_many

    audit_record_many(
        [
            {
                "actor": SYSTEM,
                "action": "invoice.finalize",
                "tenant_id": i.tenant_id,
                "target_type": "invoice",
                "target_id": i.number,
                "data": {"period": i.period_id, "total": i.total},
            }
            for i in invoices
        ]
    )
    payload = [
        {
            "type": "InvoiceFinalized",
            "tenant_id": i.tenant_id,
            "payload": {
                "invoice_id": i.pk,
                "number": i.number,
                "status": i.status,
                "total": i.total,
                "amount_due": i.amount_due,
                "currency": i.currency,
            },
        }
        for i in invoices
    ]
    payload += [
        {**e, "type": "InvoicePaid"}
        for e, i in zip(payload, invoices, strict=True)
        if i.status == InvoiceStatus.PAID
    ]
    events_record_many(payload)
    return len(invoices)


# --- finalization and numbers ------------------------------------------------------------------


def _next_number(year: int) -> str:
    InvoiceNumberSequence.objects.get_or_create(year=year)
    seq = InvoiceNumberSequence.objects.select_for_update().get(year=year)
    seq.last_number += 1
    seq.save(update_fields=["last_number"])
    return f"INV-{year}-{seq.last_number:06d}"


@transaction.atomic
def invoice_finalize(*, invoice_id: int, actor: Actor = SYSTEM) -> Invoice:
    invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
    if invoice.status != InvoiceStatus.DRAFT:
        raise Conflict(f"The invoice is {invoice.status}.", code="invoice_not_draft")
    now = timezone.now()
    invoice.number = _next_number(now.year)
    invoice.finalized_at = now
    invoice.due_at = now + timedelta(days=settings.BILLING_INVOICE_DUE_DAYS)
    if invoice.amount_due == 0:
        invoice.status, invoice.paid_at = InvoiceStatus.PAID, now
    else:
        invoice.status = InvoiceStatus.OPEN
        if get_gateway().name != "manual":
            invoice.next_payment_attempt_at = now  # collected by the next retry sweep
    invoice.save()
    _record(invoice, actor=actor, action="invoice.finalize", event="InvoiceFinalized")
    if invoice.status == InvoiceStatus.PAID:
        _record(invoice, actor=actor, action="invoice.paid", event="InvoicePaid", amount=0)
    return invoice


# --- payments and dunning ----------------------------------------------------------------------


def idempotency_key(invoice: Invoice, attempt: int) -> str:
    return f"invoice-{invoice.pk}-attempt-{attempt}"


@dataclass(frozen=True)
class PayResult:
    invoice: Invoice
    payment: Payment


def invoice_pay(*, invoice_id: int, actor: Actor = SYSTEM) -> PayResult:
    """Try to collect an open invoice now, through the configured gateway.

    The attempt is recorded first (its idempotency key derives from invoice and attempt), then
    the gateway is called outside the row lock, then the result is applied.
    """
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if invoice.status != InvoiceStatus.OPEN or invoice.amount_due <= 0:
            raise Conflict(
                f"The invoice is {invoice.status}; nothing to collect.", code="invoice_not_payable"
            )
        gateway = get_gateway()
        if gateway.name == "manual":
            raise Conflict(
                "Invoices are paid by bank transfer; staff record the payment.",
                code="gateway_manual",
            )
        pending = (
            invoice.payments.filter(status=PaymentStatus.PENDING)
            .exclude(gateway="manual")
            .order_by("-attempt")
            .first()
        )
        if pending is not None and pending.external_id:
            raise Conflict("A payment of this invoice is in progress.", code="payment_in_progress")
        if pending is not None:
            payment = pending  # the gateway never answered: the same attempt, the same key
        else:
            attempt = invoice.payments.count() + 1
            payment = Payment.objects.create(
                invoice=invoice,
                attempt=attempt,
                gateway=gateway.name,
                idempotency_key=idempotency_key(invoice, attempt),
                amount=invoice.amount_due,
                currency=invoice.currency,
            )
            invoice.payment_attempts = attempt
        invoice.next_payment_attempt_at = None
        invoice.save(update_fields=["payment_attempts", "next_payment_attempt_at", "updated_at"])
    try:
        result = gateway.charge(
            invoice=invoice, amount=payment.amount, idempotency_key=payment.idempotency_key
        )
    except Exception:
        # Unknown outcome (e.g. Stripe unreachable): the sweep tries again in a few minutes
        # with the same idempotency key, so the customer is charged at most once.
        Invoice.objects.filter(pk=invoice.pk).update(
            next_payment_attempt_at=timezone.now() + timedelta(minutes=5)
        )
        raise
    with transaction.atomic():
        if result.external_id:
            Payment.objects.filter(pk=payment.pk).update(external_id=result.external_id)
        if result.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED):
            _apply(
                payment_id=payment.pk,
                status=result.status,
                failure_code=result.failure_code,
                failure_message=result.failure_message,
                actor=actor,
            )
    payment.refresh_from_db()
    invoice.refresh_from_db()
    return PayResult(invoice=invoice, payment=payment)


def payment_result_apply(
    *,
    external_id: str,
    status: str,
    failure_code: str = "",
    failure_message: str = "",
    occurred_at: datetime,
) -> Payment | None:
    """Apply a gateway's word about a payment (a Stripe webhook). Idempotent: a payment
    already succeeded or failed is not changed again; unknown ids are ignored (None)."""
    payment = Payment.objects.filter(external_id=external_id).first() if external_id else None
    if payment is None:
        return None
    with transaction.atomic():
        return _apply(
            payment_id=payment.pk,
            status=status,
            failure_code=failure_code,
            failure_message=failure_message,
            actor=Actor("stripe"),
        )


def _apply(
    *, payment_id: int, status: str, failure_code: str, failure_message: str, actor: Actor
) -> Payment:
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    if payment.status == PaymentStatus.SUCCEEDED or payment.status == status:
        return payment  # final, or already known
    invoice = Invoice.objects.select_for_update().get(pk=payment.invoice_id)
    payment.status = status
    payment.failure_code, payment.failure_message = failure_code[:100], failure_message
    payment.save()
    if status == PaymentStatus.SUCCEEDED:
        _invoice_paid(invoice, amount=payment.amount, actor=actor)
    else:
        _payment_failed(invoice, payment, actor=actor)
    return payment


def _invoice_paid(invoice: Invoice, *, amount: int, actor: Actor) -> None:
    if invoice.status == InvoiceStatus.PAID:
        return
    now = timezone.now()
    invoice.amount_paid += amount
    invoice.amount_due = max(0, invoice.total - invoice.amount_paid)
    if invoice.amount_due == 0:
        invoice.status, invoice.paid_at, invoice.next_payment_attempt_at = (
            InvoiceStatus.PAID,
            now,
            None,
        )
    invoice.save()
    _record(invoice, actor=actor, action="invoice.paid", event="InvoicePaid", amount=amount)
    # Dunning ends: the subscription and the tenant work again.
    if (
        invoice.subscription_id
        and not Invoice.objects.filter(
            subscription_id=invoice.subscription_id,
            status=InvoiceStatus.OPEN,
            first_failed_at__isnull=False,
        )
        .exclude(pk=invoice.pk)
        .exists()
    ):
        sub = Subscription.objects.get(pk=invoice.subscription_id)
        if sub.status == SubscriptionStatus.PAST_DUE:
            subscription_mark_paid(subscription_id=sub.pk, actor=actor)
        elif (
            sub.status == SubscriptionStatus.EXPIRED
            and invoice.first_failed_at is not None
            and sub.ended_at is not None
            and sub.ended_at >= invoice.first_failed_at  # ended by this invoice's dunning
        ):
            try:
                subscription_reactivate(
                    subscription_id=sub.pk, actor=actor, reason=f"payment of {invoice.number}"
                )
            except Conflict:
                log.info("subscription_not_reactivated", subscription_id=sub.pk)
        tenant = Tenant.objects.get(pk=invoice.tenant_id)
        if tenant.status == TenantStatus.SUSPENDED and tenant.status_reason.startswith("dunning"):
            tenant_activate(tenant_id=tenant.pk, actor=actor, reason=f"payment of {invoice.number}")


def _payment_failed(invoice: Invoice, payment: Payment, *, actor: Actor) -> None:
    now = timezone.now()
    schedule = settings.BILLING_RETRY_SCHEDULE_DAYS
    if invoice.first_failed_at is None:
        invoice.first_failed_at = now
    failures = invoice.payments.filter(status=PaymentStatus.FAILED).count()
    final = failures > len(schedule)
    invoice.next_payment_attempt_at = (
        None if final else invoice.first_failed_at + timedelta(days=schedule[failures - 1])
    )
    if final:
        invoice.status = InvoiceStatus.UNCOLLECTIBLE
    invoice.save()
    _record(
        invoice,
        actor=actor,
        action="invoice.payment_failed",
        event="PaymentFailed",
        attempt=payment.attempt,
        failure_code=payment.failure_code,
        final=final,
        next_attempt_at=invoice.next_payment_attempt_at.isoformat()
        if invoice.next_payment_attempt_at
        else None,
    )
    if invoice.subscription_id:
        sub = Subscription.objects.get(pk=invoice.subscription_id)
        if sub.status == SubscriptionStatus.ACTIVE:
            subscription_mark_past_due(subscription_id=sub.pk, actor=actor)
        if final:
            _dunning_final(invoice, sub, actor=actor)


def _dunning_final(invoice: Invoice, sub: Subscription, *, actor: Actor) -> None:
    reason = f"dunning: {invoice.number} unpaid after all retries"
    tenant = Tenant.objects.get(pk=invoice.tenant_id)
    if tenant.status == TenantStatus.ACTIVE:
        tenant_suspend(tenant_id=tenant.pk, actor=actor, reason=reason)
    subscription_expire(subscription_id=sub.pk, actor=actor, reason=reason)


def invoices_retry_due(*, now: datetime | None = None) -> dict[str, int]:
    """The beat run of dunning: charge every open invoice whose next attempt is due."""
    now = now or timezone.now()
    done = {"attempted": 0, "failed": 0}
    ids = list(
        Invoice.objects.filter(status=InvoiceStatus.OPEN, next_payment_attempt_at__lte=now)
        .order_by("next_payment_attempt_at")
        .values_list("pk", flat=True)
    )
    for invoice_id in ids:
        try:
            invoice_pay(invoice_id=invoice_id)
            done["attempted"] += 1
        except Conflict:
            pass
        except Exception:
            done["failed"] += 1
            log.exception("invoice_retry_failed", invoice_id=invoice_id)
    return done


# --- staff actions -------------------------------------------------------------------------------


@transaction.atomic
def invoice_mark_paid(*, invoice_id: int, actor: Actor, reason: str = "") -> Invoice:
    """Manual gateway: staff record a bank transfer of the amount due."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        raise Conflict(f"The invoice is {invoice.status}.", code="invoice_not_payable")
    attempt = invoice.payments.count() + 1
    Payment.objects.create(
        invoice=invoice,
        attempt=attempt,
        gateway="manual",
        status=PaymentStatus.SUCCEEDED,
        idempotency_key=idempotency_key(invoice, attempt),
        amount=invoice.amount_due,
        currency=invoice.currency,
    )
    invoice.status = InvoiceStatus.OPEN
    _invoice_paid(invoice, amount=invoice.amount_due, actor=actor)
    return invoice


@transaction.atomic
def invoice_void(*, invoice_id: int, actor: Actor, reason: str) -> Invoice:
    if not reason.strip():
        raise InvalidInput("Give a reason.", code="reason_required")
    invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        raise Conflict(f"A {invoice.status} invoice cannot be voided.", code="invoice_not_voidable")
    invoice.status, invoice.voided_at, invoice.void_reason = (
        InvoiceStatus.VOID,
        timezone.now(),
        reason,
    )
    invoice.next_payment_attempt_at = None
    invoice.save()
    _record(invoice, actor=actor, action="invoice.void", event="InvoiceVoided", reason=reason)
    return invoice


def _credit_number(year: int) -> str:
    # A separate gapless sequence for credit notes, kept under a distinct "year" key.
    key = year * 10 + 1
    InvoiceNumberSequence.objects.get_or_create(year=key)
    seq = InvoiceNumberSequence.objects.select_for_update().get(year=key)
    seq.last_number += 1
    seq.save(update_fields=["last_number"])
    return f"CN-{year}-{seq.last_number:06d}"


def credit_note_issue(*, invoice_id: int, amount: int, reason: str, actor: Actor) -> CreditNote:
    """Credit part or all of a paid invoice and refund it through the gateway."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if invoice.status != InvoiceStatus.PAID:
            raise Conflict("Only a paid invoice can be credited.", code="invoice_not_paid")
        credited = sum(invoice.credit_notes.values_list("amount", flat=True))
        if not 0 < amount <= invoice.amount_paid - credited:
            raise InvalidInput(
                f"Credit between 1 and {invoice.amount_paid - credited}.",
                code="invalid_amount",
                details={"available": invoice.amount_paid - credited},
            )
        note = CreditNote.objects.create(
            invoice=invoice,
            number=_credit_number(timezone.now().year),
            amount=amount,
            currency=invoice.currency,
            reason=reason,
        )
        payment = (
            invoice.payments.filter(status=PaymentStatus.SUCCEEDED).order_by("-created_at").first()
        )
        _record(
            invoice,
            actor=actor,
            action="invoice.credit_note",
            event="CreditNoteIssued",
            reason=reason,
            credit_note=note.number,
            amount=amount,
        )
    if payment is not None and payment.gateway != "manual":
        result = get_gateway().refund(
            payment=payment, amount=amount, idempotency_key=f"credit-note-{note.pk}"
        )
        CreditNote.objects.filter(pk=note.pk).update(refund_external_id=result.external_id)
        note.refund_external_id = result.external_id
    return note


def refund_recorded(*, external_id: str, amount_refunded: int, occurred_at: datetime) -> None:
    """Stripe says a charge was refunded (e.g. from its dashboard): record it once."""
    payment = Payment.objects.filter(external_id=external_id).first()
    if payment is None:
        return
    audit_record(
        actor=Actor("stripe"),
        action="payment.refunded",
        tenant_id=payment.invoice.tenant_id,
        target_type="payment",
        target_id=payment.pk,
        data={"amount_refunded": amount_refunded, "at": occurred_at.isoformat()},
    )


@transaction.atomic
def invoice_create_one_off(
    *, tenant_id: int, lines: list[tuple[str, int]], currency: str, actor: Actor, reason: str
) -> Invoice:
    """A one-off invoice of adjustment lines (description, amount in minor units; negative
    for a credit), finalized at once: its number comes from the same gapless sequence."""
    if not lines:
        raise InvalidInput("Give at least one line.", code="no_lines")
    if not reason.strip():
        raise InvalidInput("Give a reason.", code="reason_required")
    tenant = Tenant.objects.get(pk=tenant_id)
    invoice = Invoice(tenant=tenant, currency=currency, tax_rate_bps=_tax_rate_bps(tenant))
    built = [
        InvoiceLine(
            kind=LineKind.ADJUSTMENT,
            description=description[:300],
            quantity=1,
            unit_amount=amount,
            amount=amount,
        )
        for description, amount in lines
    ]
    _totals(invoice, built)
    invoice.save()
    for line in built:
        line.invoice = invoice
    InvoiceLine.objects.bulk_create(built)
    _record(invoice, actor=actor, action="invoice.create", event=None, reason=reason, one_off=True)
    return invoice_finalize(invoice_id=invoice.pk, actor=actor)

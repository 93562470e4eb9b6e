"""Domain events through an outbox table.

``event_record`` writes a :class:`~core.models.DomainEvent` row inside the caller's
transaction, so an event exists if and only if the change committed. After commit the
in-process subscribers registered with :func:`subscriber` run (cache invalidation and the
like) and the row is marked dispatched; ``events_dispatch_pending`` (a beat task) picks up
any row whose dispatch did not finish, e.g. because the process died right after commit.

Subscribers must be idempotent: a row may be dispatched more than once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.models import DomainEvent

log = structlog.get_logger(__name__)

Handler = Callable[[DomainEvent], None]
BatchHandler = Callable[[list[DomainEvent]], None]
_subscribers: dict[str, list[Handler]] = defaultdict(list)
_batch_subscribers: list[BatchHandler] = []
ALL = "*"


def subscriber_batch(handler: BatchHandler) -> BatchHandler:
    """Register a handler of every event type that takes the events of a dispatch together
    (so it can read what it needs for all of them in one query)."""
    if handler not in _batch_subscribers:
        _batch_subscribers.append(handler)
    return handler


def subscriber(*event_types: str) -> Callable[[Handler], Handler]:
    """Register a handler for the given event types (``"*"`` for every type)."""

    def register(handler: Handler) -> Handler:
        for event_type in event_types:
            if handler not in _subscribers[event_type]:
                _subscribers[event_type].append(handler)
        return handler

    return register


def event_record(
    *,
    type: str,
    payload: dict[str, Any],
    tenant_id: int | None = None,
    schema_version: int = 1,
) -> DomainEvent:
    """Write the event into the outbox in the current transaction; dispatch on commit."""
    event = DomainEvent.objects.create(
        type=type,
        tenant_id=tenant_id,
        payload=payload,
        schema_version=schema_version,
        occurred_at=timezone.now(),
    )
    # robust: a failing dispatch never fails the request whose change committed; the sweep
    # (events_dispatch_pending) retries it.
    transaction.on_commit(lambda: event_dispatch(event_id=event.pk), robust=True)
    return event


def _handlers_for(event_type: str) -> list[Handler]:
    return [*_subscribers.get(event_type, []), *_subscribers.get(ALL, [])]


def event_dispatch(*, event_id: Any) -> bool:
    """Run the in-process subscribers of one event; return True once it is dispatched."""
    with transaction.atomic():
        event = (
            DomainEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=event_id, dispatched_at__isnull=True)
            .first()
        )
        if event is None:
            return False
        try:
            with transaction.atomic():
                for handler in _handlers_for(event.type):
                    handler(event)
                for batch_handler in _batch_subscribers:
                    batch_handler([event])
        except Exception as exc:
            log.exception(
                "domain_event_dispatch_failed", event_type=event.type, event_id=str(event.pk)
            )
            DomainEvent.objects.filter(pk=event.pk).update(
                dispatch_attempts=F("dispatch_attempts") + 1, last_error=repr(exc)[:2000]
            )
            return False
        DomainEvent.objects.filter(pk=event.pk).update(
            dispatched_at=timezone.now(),
            dispatch_attempts=F("dispatch_attempts") + 1,
            last_error="",
        )
        return True


def events_dispatch_pending(
    *, older_than: timedelta = timedelta(seconds=30), limit: int = 500
) -> int:
    """Dispatch outbox rows left undispatched (a crash after commit, a failing subscriber)."""
    cutoff = timezone.now() - older_than
    ids = list(
        DomainEvent.objects.filter(dispatched_at__isnull=True, occurred_at__lte=cutoff)
        .order_by("occurred_at")
        .values_list("pk", flat=True)[:limit]
    )
    return events_dispatch_many(event_ids=ids)


def events_record_many(events: list[dict[str, Any]]) -> list[DomainEvent]:
    """``event_record`` for many events in one insert (each a dict of its keyword arguments)."""
    now = timezone.now()
    rows = DomainEvent.objects.bulk_create(
        [
            DomainEvent(
                type=e["type"],
                tenant_id=e.get("tenant_id"),
                payload=e["payload"],
                schema_version=e.get("schema_version", 1),
                occurred_at=now,
            )
            for e in events
        ]
    )
    ids = [row.pk for row in rows]
    transaction.on_commit(lambda: events_dispatch_many(event_ids=ids), robust=True)
    return rows


def events_dispatch_many(*, event_ids: list[Any]) -> int:
    """Dispatch many events in one transaction (one lock query, one update for the lot);
    each event's subscribers run in a savepoint of their own, so one failing event is left
    pending for the sweep without undoing the others. Returns how many were dispatched."""
    if not event_ids:
        return 0
    done: list[Any] = []
    with transaction.atomic():
        events = list(
            DomainEvent.objects.select_for_update(skip_locked=True)
            .filter(pk__in=event_ids, dispatched_at__isnull=True)
            .order_by("occurred_at")
        )
        for event in events:
            handlers = _handlers_for(event.type)
            if not handlers:
                done.append(event.pk)  # only the batch subscribers want it
                continue
            try:
                with transaction.atomic():
                    for handler in handlers:
                        handler(event)
            except Exception as exc:
                log.exception(
                    "domain_event_dispatch_failed", event_type=event.type, event_id=str(event.pk)
                )
                DomainEvent.objects.filter(pk=event.pk).update(
                    dispatch_attempts=F("dispatch_attempts") + 1, last_error=repr(exc)[:2000]
                )
                continue
            done.append(event.pk)
        if _batch_subscribers and done:
            dispatched = [e for e in events if e.pk in set(done)]
            try:
                with transaction.atomic():
                    for batch_handler in _batch_subscribers:
                        batch_handler(dispatched)
            except Exception:
                # Leave them all pending: the sweep dispatches them one by one.
                log.exception("domain_event_batch_dispatch_failed", events=len(dispatched))
                done = []
        DomainEvent.objects.filter(pk__in=done).update(
            dispatched_at=timezone.now(),
            dispatch_attempts=F("dispatch_attempts") + 1,
            last_error="",
        )
    return len(done)

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
_subscribers: dict[str, list[Handler]] = defaultdict(list)
ALL = "*"


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
    transaction.on_commit(lambda: event_dispatch(event_id=event.pk))
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
    return sum(1 for event_id in ids if event_dispatch(event_id=event_id))

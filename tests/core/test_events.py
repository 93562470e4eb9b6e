from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from core import events
from core.events import event_record, events_dispatch_pending, subscriber
from core.models import DomainEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def received():
    seen: list[str] = []

    def handler(event: DomainEvent) -> None:
        seen.append(event.payload["n"])

    subscriber("TestHappened")(handler)
    yield seen
    events._subscribers["TestHappened"].remove(handler)


def test_event_and_change_roll_back_together(received):
    with pytest.raises(RuntimeError), transaction.atomic():
        event_record(type="TestHappened", payload={"n": "rolled back"})
        raise RuntimeError("the change failed")
    assert not DomainEvent.objects.filter(type="TestHappened").exists()
    assert received == []


def test_event_is_dispatched_after_commit_and_marked(received, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event = event_record(type="TestHappened", payload={"n": "one"})
    assert received == []  # nothing runs before commit
    for callback in callbacks:
        callback()
    assert received == ["one"]
    event.refresh_from_db()
    assert event.dispatched_at is not None
    assert event.dispatch_attempts == 1


def test_dispatch_is_once_per_event(received, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        event = event_record(type="TestHappened", payload={"n": "once"})
    assert events.event_dispatch(event_id=event.pk) is False
    assert received == ["once"]


def test_a_failing_subscriber_leaves_the_event_pending_for_the_sweep(
    django_capture_on_commit_callbacks,
):
    calls: list[int] = []

    def flaky(event: DomainEvent) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("downstream down")

    subscriber("FlakyHappened")(flaky)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event = event_record(type="FlakyHappened", payload={})
        event.refresh_from_db()
        assert event.dispatched_at is None
        assert "downstream down" in event.last_error
        # The sweep only takes rows older than its grace period.
        assert events_dispatch_pending() == 0
        with time_machine.travel(timezone.now() + timedelta(minutes=1)):
            assert events_dispatch_pending() == 1
        event.refresh_from_db()
        assert event.dispatched_at is not None
        assert event.dispatch_attempts == 2
    finally:
        events._subscribers["FlakyHappened"].remove(flaky)

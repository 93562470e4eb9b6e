from __future__ import annotations

from celery import shared_task

from core.events import events_dispatch_pending


@shared_task(name="core.events_dispatch_pending")
def events_dispatch_pending_task() -> int:
    return events_dispatch_pending()

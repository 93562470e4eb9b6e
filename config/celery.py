"""The Celery app. Tenant-aware (tenant-schemas-celery): a task sent while a tenant's schema
is active runs in that schema; every task's log lines carry the tenant."""

from __future__ import annotations

import os
from typing import Any

from celery.signals import task_postrun, task_prerun
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = CeleryApp("tenantry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _bind_log_context(task: Any = None, task_id: str | None = None, **_: Any) -> None:
    import structlog
    from django.db import connection

    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        task=getattr(task, "name", None),
        task_id=task_id,
        tenant=getattr(connection, "schema_name", None),
    )


@task_postrun.connect
def _clear_log_context(**_: Any) -> None:
    import structlog

    structlog.contextvars.clear_contextvars()

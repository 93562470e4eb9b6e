"""Beat schedules created by migrations (django-celery-beat rows, editable in the admin).

Each app's schedule migration lists its tasks and uses ``periodic_tasks``; the functions
only use the historical models (``apps.get_model``), so old migrations keep working.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

# (name shown in the admin, registered task name, every so many seconds)
Schedule = list[tuple[str, str, int]]


def periodic_tasks(tasks: Schedule) -> migrations.RunPython:
    def create(apps: Any, schema_editor: Any) -> None:
        interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
        task_model = apps.get_model("django_celery_beat", "PeriodicTask")
        for name, task, seconds in tasks:
            interval, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
            task_model.objects.get_or_create(
                name=name, defaults={"task": task, "interval": interval}
            )

    def remove(apps: Any, schema_editor: Any) -> None:
        task_model = apps.get_model("django_celery_beat", "PeriodicTask")
        task_model.objects.filter(name__in=[name for name, _, _ in tasks]).delete()

    return migrations.RunPython(create, remove)

"""Beat schedules for usage aggregation and storage measurement, editable in the admin."""

from django.db import migrations

from core.beat import periodic_tasks

TASKS = [
    # (name, task, every seconds)
    ("Flush usage counters to PostgreSQL", "usage.flush", 60),
    ("Measure tenant storage", "usage.measure_storage", 86400),
]


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [periodic_tasks(TASKS)]

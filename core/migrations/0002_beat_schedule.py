"""Beat schedule for the outbox sweep, editable afterwards in the admin."""

from django.db import migrations

from core.beat import periodic_tasks

TASKS = [
    # (name, task, every seconds)
    ("Dispatch pending domain events", "core.events_dispatch_pending", 60),
]


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [periodic_tasks(TASKS)]

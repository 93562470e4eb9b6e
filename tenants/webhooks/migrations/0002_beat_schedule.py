"""Beat schedule for the webhook retry sweep, editable afterwards in the admin."""

from django.db import migrations

from core.beat import periodic_tasks

TASKS = [
    # (name, task, every seconds)
    ("Deliver due webhooks", "webhooks.deliver_due", 60),
]


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [periodic_tasks(TASKS)]

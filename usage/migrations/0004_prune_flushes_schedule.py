"""A daily beat schedule that deletes the flush records no flush can need again."""

from django.db import migrations

from core.beat import periodic_tasks

TASKS = [
    # (name, task, every seconds)
    ("Prune applied usage flush records", "usage.prune_flushes", 86400),
]


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0003_usageevent_fewer_indexes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [periodic_tasks(TASKS)]

"""Beat schedule for renewals, trial ends and expiry, editable afterwards in the admin."""

from django.db import migrations

from core.beat import periodic_tasks

TASKS = [
    # (name, task, every seconds): at least hourly, per the subscriptions issue
    ("Renew, convert trials and expire subscriptions", "subscriptions.renew_due", 600),
]


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [periodic_tasks(TASKS)]

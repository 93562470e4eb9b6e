"""Beat schedules for invoicing and payment retries, editable afterwards in the admin."""

from django.db import migrations

from core.beat import periodic_tasks

TASKS = [
    # (name, task, every seconds): at least hourly, per the billing issue
    ("Invoice closed subscription periods", "billing.invoice_due", 900),
    ("Collect and retry invoice payments", "billing.retry_payments", 900),
]


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [periodic_tasks(TASKS)]

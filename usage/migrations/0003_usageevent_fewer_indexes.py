# Ingestion inserts up to 1,000 events per statement, and every index costs work on every
# row. Nothing reads UsageEvent by metric or by (tenant, metric, period_start): totals come
# from UsageRecord. Lookups by tenant (and the foreign key's own checks) use the unique
# (tenant_id, event_id) index, whose first column is the tenant. Left: that one and the
# primary key. The foreign key constraint itself stays as it is: only its index is dropped
# (AlterField would drop and re-add the constraint, validating every row again).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("tenants", "0001_initial"),
        ("usage", "0002_beat_schedule"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="usageevent",
            name="usage_usage_tenant__6afcfe_idx",
        ),
        migrations.AlterField(
            model_name="usageevent",
            name="metric",
            field=models.SlugField(db_index=False),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="usageevent",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "usage_usageevent_tenant_id_ef6ed7b0"',
                    reverse_sql='CREATE INDEX "usage_usageevent_tenant_id_ef6ed7b0" '
                    'ON "usage_usageevent" ("tenant_id")',
                ),
            ],
        ),
    ]

"""``migrate_schemas`` that also keeps the tenant template schema in step.

New tenants are cloned from ``TENANT_BASE_SCHEMA``; it is not a tenant row, so django-tenants
alone would never migrate it. Whenever tenant schemas are migrated as a whole, the template
is created if missing and migrated first, with the same per-schema progress lines.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django_tenants.management.commands.migrate_schemas import (
    GET_EXECUTOR_FUNCTION,
    MigrateSchemasCommand,
)
from django_tenants.utils import schema_exists


class Command(MigrateSchemasCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        super().handle(*args, **options)
        targets_one_schema = self.schema_name and self.schema_name != self.PUBLIC_SCHEMA_NAME
        if not self.sync_tenant or targets_one_schema:
            return
        template = settings.TENANT_BASE_SCHEMA
        if not schema_exists(template):
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE SCHEMA "{template}"')
            self.stdout.write(f"Created the tenant template schema '{template}'.")
        executor = GET_EXECUTOR_FUNCTION(codename=self.executor)(self.args, self.options)
        executor.run_migrations(tenants=[template])

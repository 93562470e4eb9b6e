"""``migrate_schemas`` that keeps the tenant template schema in step and skips tenants that
have no schema yet.

New tenants are cloned from ``TENANT_BASE_SCHEMA``; it is not a tenant row, so django-tenants
alone would never migrate it. Whenever tenant schemas are migrated as a whole, the template is
created if missing and migrated first, then every tenant whose schema exists (a tenant still
provisioning, or whose provisioning failed, has none: it is cloned from the migrated template
later). Progress lines are django-tenants' ``[n/N (p%) standard:<schema>]``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django_tenants.management.commands.migrate_schemas import (
    GET_EXECUTOR_FUNCTION,
    MigrateSchemasCommand,
)
from django_tenants.utils import get_tenant_model, schema_exists


class Command(MigrateSchemasCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        targets_one_schema = options.get("schema_name") not in (None, "", "public")
        if targets_one_schema or (options.get("shared") and not options.get("tenant")):
            super().handle(*args, **options)  # one schema, or only the public one: as upstream
            return
        # Public (unless only tenants were asked for), then the template, then tenants.
        if not options.get("tenant"):
            super().handle(*args, **{**options, "shared": True, "tenant": False})
        self.args, self.options = args, options
        executor = GET_EXECUTOR_FUNCTION(codename=options.get("executor"))(args, options)
        template = settings.TENANT_BASE_SCHEMA
        if not schema_exists(template):
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE SCHEMA "{template}"')
            self.stdout.write(f"Created the tenant template schema '{template}'.")
        schemas = [template] + [
            name
            for name in get_tenant_model()
            .objects.exclude(schema_name="public")
            .order_by("pk")
            .values_list("schema_name", flat=True)
            if schema_exists(name)
        ]
        executor.run_migrations(tenants=schemas)

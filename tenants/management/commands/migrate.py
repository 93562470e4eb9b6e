"""``migrate`` is ``migrate_schemas`` (public, template and every tenant), as in django-tenants."""

from tenants.management.commands.migrate_schemas import Command

__all__ = ["Command"]

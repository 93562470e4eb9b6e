from django.apps import AppConfig


class WorkspaceConfig(AppConfig):
    """The tenant's own tables, created in every tenant schema (django-tenants TENANT_APPS)."""

    name = "tenants.workspace"
    label = "workspace"
    verbose_name = "Tenant workspace"
    default_auto_field = "django.db.models.BigAutoField"

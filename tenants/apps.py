from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenants import subscribers  # noqa: F401  (registers event subscribers)
        from tenants.api import schema  # noqa: F401  (OpenAPI auth extension)

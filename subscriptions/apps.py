from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from subscriptions import subscribers  # noqa: F401  (registers event subscribers)
        from subscriptions.hooks import register

        register()

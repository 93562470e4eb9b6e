"""Project configuration: settings, URL confs, Celery app and the zero-setup launcher."""

from config.celery import app as celery_app

__all__ = ["celery_app"]

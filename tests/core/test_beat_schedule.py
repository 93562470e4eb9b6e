import pytest
from django_celery_beat.models import PeriodicTask

from config.celery import app

pytestmark = pytest.mark.django_db


def test_beat_schedules_exist_and_name_registered_tasks():
    app.loader.import_default_modules()
    tasks = {t.name: t for t in PeriodicTask.objects.all()}
    assert "Dispatch pending domain events" in tasks
    for periodic in tasks.values():
        assert periodic.task in app.tasks, periodic.task

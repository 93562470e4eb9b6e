"""Applied flush records are pruned once no flush in Redis can need them again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from usage.meter import redis_client
from usage.models import UsageFlush
from usage.services import FLUSH_LIST, flush_key, usage_flushes_prune

pytestmark = pytest.mark.django_db


def test_old_records_of_finished_flushes_go_the_others_stay():
    now = timezone.now()
    old = now - timedelta(days=8)
    for flush_id, applied_at in [
        ("done-old", old),
        ("listed-old", old),
        ("key-left-old", old),
        ("done-recent", now - timedelta(days=1)),
    ]:
        UsageFlush.objects.create(flush_id=flush_id, applied_at=applied_at, buckets=1)
    client = redis_client()
    client.rpush(FLUSH_LIST, "listed-old")  # still to be cleaned up by the next run
    client.hset(flush_key("key-left-old"), "x", 1)  # its key left behind

    assert usage_flushes_prune() == 1
    assert set(UsageFlush.objects.values_list("flush_id", flat=True)) == {
        "listed-old",
        "key-left-old",
        "done-recent",
    }
    client.delete(FLUSH_LIST, flush_key("key-left-old"))
    assert usage_flushes_prune() == 2
    assert list(UsageFlush.objects.values_list("flush_id", flat=True)) == ["done-recent"]


def test_nothing_is_pruned_when_redis_cannot_say(settings):
    UsageFlush.objects.create(
        flush_id="old", applied_at=timezone.now() - timedelta(days=30), buckets=1
    )
    import redis

    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert usage_flushes_prune(client=dead) == 0
    assert UsageFlush.objects.filter(flush_id="old").exists()

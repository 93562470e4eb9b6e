from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from usage.meter import redis_client
from usage.models import UsageEvent, UsageRecord
from usage.selectors import usage_period_totals

pytestmark = pytest.mark.django_db

URL = "/api/v1/usage/events/"


def events(n, start=0, metric="widgets", quantity=1, **extra):
    now = timezone.now().isoformat()
    return [
        {"id": f"evt-{i}", "metric": metric, "quantity": quantity, "timestamp": now, **extra}
        for i in range(start, start + n)
    ]


def total(tenant, metric="widgets"):
    from usage.limits import tenant_limits

    return usage_period_totals(
        tenant_id=tenant.pk, period_start=tenant_limits(tenant_id=tenant.pk).period_start
    ).get(metric, 0)


@pytest.fixture
def widgets(alpha, on_plan):
    on_plan(alpha.tenant, "metered-overage")  # names the custom metric "widgets"
    return alpha


def test_a_batch_is_accepted_and_durable_before_the_response(widgets, alpha_client):
    response = alpha_client.post(URL, {"events": events(10, quantity=3)}, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 10, "duplicates": 0}
    assert UsageEvent.objects.filter(tenant=widgets.tenant).count() == 10
    assert total(widgets.tenant) == 30


def test_resent_split_and_reordered_batches_count_once(widgets, alpha_client):
    batch = events(10)
    assert alpha_client.post(URL, {"events": batch}, format="json").json() == {
        "accepted": 10,
        "duplicates": 0,
    }
    assert alpha_client.post(URL, {"events": batch}, format="json").json() == {
        "accepted": 0,
        "duplicates": 10,
    }
    reordered = list(reversed(batch[:5])) + events(5, start=10)
    assert alpha_client.post(URL, {"events": reordered}, format="json").json() == {
        "accepted": 5,
        "duplicates": 5,
    }
    assert total(widgets.tenant) == 15


def test_a_redis_restart_loses_and_doubles_nothing(widgets, alpha_client):
    batch = events(20)
    alpha_client.post(URL, {"events": batch}, format="json")
    redis_client().flushdb()  # the fast duplicate check is gone; PostgreSQL still decides
    assert alpha_client.post(URL, {"events": batch}, format="json").json() == {
        "accepted": 0,
        "duplicates": 20,
    }
    assert total(widgets.tenant) == 20


def test_the_seen_set_holds_the_ids_as_redis_py_would_write_them(
    widgets, alpha_client, django_capture_on_commit_callbacks
):
    ids = ["plain", "Grüße ✓", 'quote " and \\ backslash', "tab\tnewline\n", "\x01"]
    batch = [{**events(1)[0], "id": i} for i in ids]
    with django_capture_on_commit_callbacks(execute=True):  # the set is written on commit
        assert alpha_client.post(URL, {"events": batch}, format="json").json()["accepted"] == 5
    key = f"usage:seen:{widgets.tenant.pk}"
    assert redis_client().smismember(key, ids) == [1, 1, 1, 1, 1]
    assert 0 < redis_client().ttl(key) <= 60 * 60 * 24 * 35
    with CaptureQueriesContext(connection) as queries:
        again = alpha_client.post(URL, {"events": batch}, format="json").json()
    assert again == {"accepted": 0, "duplicates": 5}
    assert not [q for q in queries.captured_queries if "usage_usageevent" in q["sql"]]


def test_the_same_id_on_another_tenant_is_its_own(
    widgets, beta, alpha_client, beta_client, on_plan
):
    on_plan(beta.tenant, "metered-overage")
    alpha_client.post(URL, {"events": events(3)}, format="json")
    assert beta_client.post(URL, {"events": events(3)}, format="json").json() == {
        "accepted": 3,
        "duplicates": 0,
    }


@pytest.mark.parametrize(
    ("bad", "field", "code"),
    [
        ({"metric": "gadgets"}, "metric", "unknown_metric"),
        ({"metric": "api_calls"}, "metric", "unknown_metric"),  # measured by us, not ingested
        ({"quantity": -1}, "quantity", "out_of_range"),
        ({"quantity": 1.5}, "quantity", "not_an_integer"),
        ({"quantity": "3"}, "quantity", "not_an_integer"),
        ({"quantity": True}, "quantity", "not_an_integer"),
        ({"timestamp": "yesterday"}, "timestamp", "invalid_timestamp"),
        ({"timestamp": "2026-01-01T00:00:00"}, "timestamp", "invalid_timestamp"),  # no offset
        ({"timestamp": "2099-01-01T00:00:00+00:00"}, "timestamp", "timestamp_in_future"),
        ({"timestamp": "2001-01-01T00:00:00+00:00"}, "timestamp", "timestamp_too_old"),
        ({"id": ""}, "id", "invalid"),
        ({"properties": [1]}, "properties", "invalid"),
    ],
)
def test_a_bad_event_rejects_the_whole_batch_naming_it(widgets, alpha_client, bad, field, code):
    batch = events(5)
    batch[3] = {**batch[3], **bad}
    response = alpha_client.post(URL, {"events": batch}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_events"
    assert list(error["details"]["events"]) == ["3"]
    assert [(p["field"], p["code"]) for p in error["details"]["events"]["3"]["problems"]] == [
        (field, code)
    ]
    assert UsageEvent.objects.filter(tenant=widgets.tenant).count() == 0  # nothing of it counted


@pytest.mark.parametrize("bad", [1, "x", None, {"id": "a", "metric": ["widgets"], "quantity": 1}])
def test_malformed_event_shapes_are_400_not_500(widgets, alpha_client, bad):
    response = alpha_client.post(URL, {"events": [*events(2), bad]}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["events"]) == ["2"]


def test_huge_quantities_are_refused_before_the_database(widgets, alpha_client):
    response = alpha_client.post(URL, {"events": events(2, quantity=2**62)}, format="json")
    assert response.status_code == 400
    assert (
        response.json()["error"]["details"]["events"]["0"]["problems"][0]["code"] == "out_of_range"
    )


def test_batch_limits_and_shape(widgets, alpha_client):
    too_many = alpha_client.post(URL, {"events": events(1001)}, format="json")
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (400, "batch_too_large")
    empty = alpha_client.post(URL, {"events": []}, format="json")
    assert (empty.status_code, empty.json()["error"]["code"]) == (400, "invalid_batch")
    shape = alpha_client.post(URL, {"evts": []}, format="json")
    assert (shape.status_code, shape.json()["error"]["code"]) == (400, "invalid_batch")
    twice = events(2)
    twice[1]["id"] = twice[0]["id"]
    dup = alpha_client.post(URL, {"events": twice}, format="json")
    assert (
        dup.json()["error"]["details"]["events"]["1"]["problems"][0]["code"] == "duplicate_in_batch"
    )


def test_a_full_batch_of_1000_is_one_set_based_insert(widgets, alpha_client):
    def queries_for(batch):
        with CaptureQueriesContext(connection) as queries:
            response = alpha_client.post(URL, {"events": batch}, format="json")
        assert response.status_code == 202
        return [
            q["sql"]
            for q in queries.captured_queries
            if not q["sql"].startswith(("SET ", "SAVEPOINT", "RELEASE"))
        ]

    for _ in range(3):  # past the api_calls quota notices of this small plan
        alpha_client.get("/api/v1/usage/")
    small = queries_for(events(10))
    large = queries_for(events(1000, start=10))
    assert len(large) == len(small)  # the same statements, whatever the batch size
    assert len([q for q in large if "INSERT INTO usage_usageevent" in q]) == 1
    assert total(widgets.tenant) == 1010


def test_late_event_within_grace_counts_into_its_own_period(widgets, alpha_client):
    from usage.limits import tenant_limits

    limits = tenant_limits(tenant_id=widgets.tenant.pk)
    late = (limits.period_start - timedelta(hours=1)).isoformat()
    response = alpha_client.post(
        URL,
        {"events": [{"id": "late-1", "metric": "widgets", "quantity": 2, "timestamp": late}]},
        format="json",
    )
    # The session tenant's subscription started at the session's start: no earlier period.
    assert response.status_code == 400
    assert (
        response.json()["error"]["details"]["events"]["0"]["problems"][0]["code"]
        == "timestamp_too_old"
    )


def test_custom_metric_quota_notices(widgets, alpha_client, django_capture_on_commit_callbacks):
    from core.models import DomainEvent

    with django_capture_on_commit_callbacks(execute=True):
        alpha_client.post(URL, {"events": events(1, quantity=85)}, format="json")  # 85 of 100
    with django_capture_on_commit_callbacks(execute=True):
        alpha_client.post(URL, {"events": events(1, start=1, quantity=20)}, format="json")  # 105
    with django_capture_on_commit_callbacks(execute=True):
        alpha_client.post(
            URL, {"events": events(1, start=2, quantity=20)}, format="json"
        )  # 125: no more notices
    seen = sorted(
        (e.type, e.payload["metric"], e.payload["threshold"])
        for e in DomainEvent.objects.filter(tenant_id=widgets.tenant.pk, type__startswith="Quota")
        if e.payload["metric"] == "widgets"
    )
    assert seen == [("QuotaExceeded", "widgets", 100), ("QuotaWarning", "widgets", 80)]


def test_usage_summary_and_daily_series(widgets, alpha_client):
    alpha_client.post(URL, {"events": events(4, quantity=5)}, format="json")
    summary = alpha_client.get("/api/v1/usage/").json()
    widgets_row = next(m for m in summary["metrics"] if m["metric"] == "widgets")
    assert (widgets_row["used"], widgets_row["limit"], widgets_row["remaining"]) == (20, 100, 80)
    assert {"period_start", "period_end"} <= set(summary)
    today = timezone.now().date().isoformat()
    daily = alpha_client.get(
        "/api/v1/usage/daily/", {"metric": "widgets", "from": today, "to": today}
    ).json()
    assert daily == [{"day": today, "quantity": 20}]
    bad = alpha_client.get(
        "/api/v1/usage/daily/", {"metric": "widgets", "from": today, "to": "2000-01-01"}
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_range")
    missing = alpha_client.get("/api/v1/usage/daily/")
    assert missing.status_code == 400


def test_storage_is_measured_as_a_gauge(alpha):
    from usage.services import usage_storage_measure

    size = usage_storage_measure(tenant_id=alpha.tenant.pk, schema_name=alpha.tenant.schema_name)
    assert size > 0
    usage_storage_measure(tenant_id=alpha.tenant.pk, schema_name=alpha.tenant.schema_name)
    rows = UsageRecord.objects.filter(tenant=alpha.tenant, metric="storage_bytes")
    assert [r.quantity for r in rows] == [size]  # the day's maximum, not a sum


# --- the fast paths: parsing, validation and storage keep the same meaning ----------------


def _post_raw(client, body: bytes, content_type="application/json"):
    return client.generic("POST", URL, body, content_type=content_type)


def _raw_batch(*members: str) -> bytes:
    """A body written out by hand: each event from its id (and other) members, as JSON text."""
    rest = '"metric": "widgets", "quantity": 1, "timestamp": "' + timezone.now().isoformat() + '"'
    return (
        '{"events": [' + ", ".join("{" + m + ", " + rest + "}" for m in members) + "]}"
    ).encode()


def test_events_are_stored_as_sent_whatever_the_offset(widgets, alpha_client):
    now = timezone.now()
    india = now.astimezone(timezone.get_fixed_timezone(330)).isoformat()
    batch = [
        {"id": "off-1", "metric": "widgets", "quantity": 2, "timestamp": india},
        {
            "id": "off-2",
            "metric": "widgets",
            "quantity": 0,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "properties": {"nested": {"list": [1, "two", None, True]}, "text": "Grüße ✓"},
        },
    ]
    response = alpha_client.post(URL, {"events": batch}, format="json")
    assert response.json() == {"accepted": 2, "duplicates": 0}
    stored = {e.event_id: e for e in UsageEvent.objects.filter(tenant=widgets.tenant)}
    assert stored["off-1"].timestamp == now  # the same instant, to the microsecond
    assert stored["off-1"].properties == {}  # no properties: an empty object
    assert stored["off-2"].properties == batch[1]["properties"]
    assert total(widgets.tenant) == 2


def test_integers_of_any_size_in_properties_stay_exact(widgets, alpha_client):
    big = 123456789012345678901234567890
    body = _raw_batch('"id": "big-1", "properties": {"big": ' + str(big) + ', "float": 1.5}')
    assert _post_raw(alpha_client, body).status_code == 202
    assert UsageEvent.objects.get(tenant=widgets.tenant, event_id="big-1").properties == {
        "big": big,
        "float": 1.5,
    }


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_are_a_parse_error(widgets, alpha_client, number):
    body = _raw_batch('"id": "nan-1", "properties": {"x": ' + number + "}")
    response = _post_raw(alpha_client, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert not UsageEvent.objects.filter(tenant=widgets.tenant).exists()


def test_bodies_the_fast_parser_refuses_still_parse_as_before(widgets, alpha_client):
    with_bom = _post_raw(alpha_client, b"\xef\xbb\xbf" + json.dumps({"events": events(2)}).encode())
    assert with_bom.status_code == 400  # as DRF's parser says
    assert "BOM" in with_bom.json()["error"]["message"]
    latin1 = json.dumps({"events": events(1, start=2, note="é")}, ensure_ascii=False)
    response = _post_raw(
        alpha_client, latin1.encode("latin-1"), content_type="application/json; charset=latin-1"
    )
    assert response.json() == {"accepted": 1, "duplicates": 0}
    broken = _post_raw(alpha_client, b'{"events": [')
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "parse_error")


@pytest.mark.parametrize(
    ("raw_event", "field", "named_id"),
    [
        ('"id": "nul\\u0000id"', "id", None),
        ('"id": "\\ud800"', "id", None),
        (
            '"id": "ok-nul", "properties": {"k": "a\\u0000b"}',
            "properties",
            "ok-nul",
        ),
        (
            '"id": "ok-sur", "properties": {"\\udc00": 1}',
            "properties",
            "ok-sur",
        ),
    ],
)
def test_text_postgresql_cannot_store_is_a_400_naming_the_event(
    widgets, alpha_client, raw_event, field, named_id
):
    response = _post_raw(alpha_client, _raw_batch('"id": "good-1"', raw_event))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_events"
    assert list(error["details"]["events"]) == ["1"]
    assert error["details"]["events"]["1"]["id"] == named_id
    assert error["details"]["events"]["1"]["problems"][0]["field"] == field
    assert not UsageEvent.objects.filter(tenant=widgets.tenant).exists()


def test_bad_text_in_a_resent_duplicate_still_rejects_the_batch(widgets, alpha_client):
    assert alpha_client.post(URL, {"events": events(2)}, format="json").json()["accepted"] == 2
    resent = events(2)
    resent[1]["properties"] = {"k": "a\x00b"}  # known to Redis as seen, but still not valid
    response = alpha_client.post(URL, {"events": resent}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["events"]) == ["1"]


def test_a_backslash_u0000_written_out_is_text_not_a_nul(widgets, alpha_client):
    batch = events(1, properties={"path": "C:\\u0000"})  # a backslash, then "u0000"
    assert alpha_client.post(URL, {"events": batch}, format="json").json()["accepted"] == 1
    assert UsageEvent.objects.get(tenant=widgets.tenant).properties == {"path": "C:\\u0000"}


def test_one_statement_writes_the_events_and_the_daily_totals(widgets, alpha_client):
    with CaptureQueriesContext(connection) as queries:
        response = alpha_client.post(URL, {"events": events(5, quantity=2)}, format="json")
    assert response.status_code == 202
    writes = [q["sql"] for q in queries.captured_queries if "INSERT INTO usage_" in q["sql"]]
    assert len(writes) == 1
    assert "INSERT INTO usage_usageevent" in writes[0]
    assert "INSERT INTO usage_usagerecord" in writes[0]
    assert total(widgets.tenant) == 10
    record = UsageRecord.objects.get(tenant=widgets.tenant, metric="widgets")
    assert (record.day, record.quantity) == (timezone.now().date(), 10)


def test_late_event_counts_into_the_earlier_period_it_belongs_to(widgets, alpha_client):
    from subscriptions.models import CURRENT_STATUSES, Subscription, SubscriptionPeriod
    from usage.limits import tenant_limits

    limits = tenant_limits(tenant_id=widgets.tenant.pk)
    sub = Subscription.objects.get(tenant=widgets.tenant, status__in=CURRENT_STATUSES)
    SubscriptionPeriod.objects.create(
        subscription=sub,
        number=SubscriptionPeriod.objects.filter(subscription=sub).count() + 100,
        start=limits.period_start - timedelta(days=30),
        end=limits.period_start,
        plan_version=sub.plan_version,
    )
    late = (limits.period_start - timedelta(hours=1)).isoformat()
    batch = [
        {"id": "late-1", "metric": "widgets", "quantity": 2, "timestamp": late},
        *events(1, quantity=3),
    ]
    assert alpha_client.post(URL, {"events": batch}, format="json").json()["accepted"] == 2
    earlier = limits.period_start - timedelta(days=30)
    assert usage_period_totals(tenant_id=widgets.tenant.pk, period_start=earlier) == {"widgets": 2}
    assert total(widgets.tenant) == 3
    assert UsageEvent.objects.get(event_id="late-1").period_start == earlier


def test_an_unlimited_metric_reads_no_totals(widgets, alpha_client, on_plan):
    from core.audit import SYSTEM
    from subscriptions.catalog import catalog_sync

    catalog_sync(
        data={
            "plans": [
                {
                    "code": "metered-unlimited",
                    "name": "Unlimited",
                    "interval": "month",
                    "price": 0,
                    "currency": "USD",
                    "quotas": {"api_calls": None, "widgets": None},
                    "rate_limit_per_minute": 1000,
                }
            ]
        },
        actor=SYSTEM,
    )
    on_plan(widgets.tenant, "metered-unlimited")
    alpha_client.post(URL, {"events": events(1)}, format="json")  # warm the caches
    with CaptureQueriesContext(connection) as queries:
        response = alpha_client.post(URL, {"events": events(3, start=1)}, format="json")
    assert response.json() == {"accepted": 3, "duplicates": 0}
    assert not [
        q for q in queries.captured_queries if "SUM(quantity) FROM usage_usagerecord" in q["sql"]
    ]
    assert total(widgets.tenant) == 4

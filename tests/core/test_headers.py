from __future__ import annotations

from django.http import HttpResponse

from core.api.headers import headers_set_safe, ratelimit_headers_set


def test_safe_and_rate_limit_headers_are_ordinary_headers():
    fast, slow = HttpResponse(), HttpResponse()
    headers_set_safe(fast, "x-request-id", "X-Request-ID", "abc")
    ratelimit_headers_set(fast, 60, 59, 1)
    for name, value in (
        ("X-Request-ID", "abc"),
        ("X-RateLimit-Limit", "60"),
        ("X-RateLimit-Remaining", "59"),
        ("X-RateLimit-Reset", "1"),
    ):
        slow[name] = value
    assert list(fast.items()) == list(slow.items())
    assert fast["x-ratelimit-limit"] == "60"  # case-insensitive as ever
    unknown = HttpResponse()
    ratelimit_headers_set(unknown, 60, None, 2)
    assert "X-RateLimit-Remaining" not in unknown
    assert unknown["x-ratelimit-reset"] == "2"

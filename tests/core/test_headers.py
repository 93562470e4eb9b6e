from __future__ import annotations

import pytest
from django.http import BadHeaderError, HttpResponse

from core.api.headers import headers_set


def test_fast_headers_are_ordinary_headers():
    fast, slow = HttpResponse(), HttpResponse()
    headers_set(fast, ("X-RateLimit-Limit", "60"), ("X-Request-ID", "abc-123"))
    slow["X-RateLimit-Limit"] = "60"
    slow["X-Request-ID"] = "abc-123"
    assert list(fast.items()) == list(slow.items())
    assert fast["x-ratelimit-limit"] == "60"  # case-insensitive as ever


def test_anything_but_printable_ascii_goes_through_djangos_checks():
    response = HttpResponse()
    with pytest.raises(BadHeaderError):
        headers_set(response, ("X-Request-ID", "a\r\nSet-Cookie: x=1"))
    headers_set(response, ("X-Note", "café"))
    assert response["X-Note"] == "café"  # latin-1: Django's own conversion


def test_safe_and_rate_limit_headers_are_ordinary_headers():
    from core.api.headers import headers_set_safe, ratelimit_headers_set

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
    unknown = HttpResponse()
    ratelimit_headers_set(unknown, 60, None, 2)
    assert "X-RateLimit-Remaining" not in unknown
    assert unknown["x-ratelimit-reset"] == "2"

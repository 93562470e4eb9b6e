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

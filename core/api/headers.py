"""Setting response headers on the request path without Django's per-header conversion.

``HttpResponse.__setitem__`` converts and checks every name and value (charset, newlines);
for the few headers the tenant hot path adds to every response (the request id, the rate
limit) that was ~5,500 instructions a header. Their names are constants and their values
printable ASCII by construction (the digits of integers, request ids that passed the
router's check), so they go straight into the header store; a response without Django's
store (none today) goes through Django's own path.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase


def headers_set_safe(response: HttpResponseBase, lower: str, name: str, value: str) -> None:
    """Set a header whose value the caller guarantees is printable ASCII (the digits of an
    integer, a validated token); ``lower`` is ``name.lower()``, spelled out by the caller."""
    store: Any = getattr(response.headers, "_store", None)
    if store is None:
        response[name] = value
    else:
        store[lower] = (name, value)


def ratelimit_headers_set(
    response: HttpResponseBase, limit: int, remaining: int | None, reset: int
) -> None:
    """``X-RateLimit-Limit``, ``-Remaining`` (when known) and ``-Reset``: integers only."""
    store: Any = getattr(response.headers, "_store", None)
    if store is None:
        response["X-RateLimit-Limit"] = str(limit)
        if remaining is not None:
            response["X-RateLimit-Remaining"] = str(remaining)
        response["X-RateLimit-Reset"] = str(reset)
        return
    store["x-ratelimit-limit"] = ("X-RateLimit-Limit", str(limit))
    if remaining is not None:
        store["x-ratelimit-remaining"] = ("X-RateLimit-Remaining", str(remaining))
    store["x-ratelimit-reset"] = ("X-RateLimit-Reset", str(reset))

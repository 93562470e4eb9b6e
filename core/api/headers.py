"""Setting response headers on the request path without Django's per-header conversion.

``HttpResponse.__setitem__`` converts and checks every name and value (charset, newlines);
for the few headers the tenant hot path adds to every response (the request id, the rate
limit) that was ~5,500 instructions a header. Their names are constants and their values
plain printable ASCII (numbers, validated ids), which is checked here with two C-level
string tests; anything else goes through Django's own path.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase


def headers_set(response: HttpResponseBase, *items: tuple[str, str]) -> None:
    store: Any = getattr(response.headers, "_store", None)
    for name, value in items:
        if store is not None and value.isascii() and value.isprintable():
            store[name.lower()] = (name, value)
        else:
            response[name] = value

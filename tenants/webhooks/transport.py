"""POST one webhook to an address the SSRF guard has checked.

``requests`` would resolve the host again when it connects; a DNS answer that changed in
between (rebinding) could then reach an address the guard never saw. So each attempt uses a
session whose connections open their socket to the checked address, while the URL (and with
it the ``Host`` header, TLS SNI and certificate verification) keeps the real host name.
Redirects are not followed, proxies from the environment are ignored, and at most
``RESPONSE_BODY_LIMIT`` bytes of the response are read.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

RESPONSE_BODY_LIMIT = 2000
USER_AGENT = "Tenantry-Webhooks/1.0"


@dataclass(frozen=True)
class HttpResult:
    status_code: int
    body: str  # the first RESPONSE_BODY_LIMIT bytes, decoded leniently


def _pinned_socket(conn: Any, address: str) -> socket.socket:
    try:
        return create_connection(
            (address, conn.port),
            conn.timeout,
            source_address=conn.source_address,
            socket_options=conn.socket_options,
        )
    except TimeoutError as exc:
        raise ConnectTimeoutError(
            conn, f"Connection to {conn.host} ({address}) timed out."
        ) from exc
    except OSError as exc:
        raise NewConnectionError(
            conn, f"Failed to connect to {conn.host} ({address}): {exc}"
        ) from exc


class _PinnedHTTPConnection(HTTPConnection):
    pinned_address = ""

    def _new_conn(self) -> socket.socket:
        return _pinned_socket(self, self.pinned_address)


class _PinnedHTTPSConnection(HTTPSConnection):
    pinned_address = ""

    def _new_conn(self) -> socket.socket:
        return _pinned_socket(self, self.pinned_address)


class _PinnedAdapter(HTTPAdapter):
    """Every connection of this adapter goes to one address, whatever the URL's host."""

    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        attrs = {"pinned_address": self._address}
        http_conn = type("PinnedHTTPConnection", (_PinnedHTTPConnection,), attrs)
        https_conn = type("PinnedHTTPSConnection", (_PinnedHTTPSConnection,), attrs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }


def webhook_post(
    *, url: str, address: str, body: bytes, headers: dict[str, str], timeout: float
) -> HttpResult:
    """POST ``body`` to ``url`` through ``address``; raises ``requests.RequestException``."""
    with requests.Session() as session:
        session.trust_env = False  # no proxies or .netrc from the environment
        adapter = _PinnedAdapter(address)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        response = session.post(
            url,
            data=body,
            headers={"user-agent": USER_AGENT, **headers},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
        try:
            raw = response.raw.read(RESPONSE_BODY_LIMIT, decode_content=True) or b""
        except Exception:  # a broken body does not change the status code we got
            raw = b""
        finally:
            response.close()
    return HttpResult(status_code=response.status_code, body=raw.decode("utf-8", "replace"))

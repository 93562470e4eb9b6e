"""POST one webhook to an address the SSRF guard has checked.

``requests`` would resolve the host again when it connects; a DNS answer that changed in
between (rebinding) could then reach an address the guard never saw. So each attempt uses a
session whose connections open their socket to the checked address, while the URL (and with
it the ``Host`` header, TLS SNI and certificate verification) keeps the real host name.
Redirects are not followed, proxies from the environment are ignored, and at most
``RESPONSE_BODY_LIMIT`` bytes of the response are read.

Deadline. ``timeout`` bounds each socket operation only: a receiver that drips a byte every
few seconds would never hit it. ``deadline`` bounds the whole attempt (connect, TLS, send,
status line, headers, body) by the wall clock: a timer shuts the attempt's sockets down when
it passes (which unblocks any read in progress), the body is read in chunks against the same
monotonic deadline, and an attempt over it raises ``requests.Timeout``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

RESPONSE_BODY_LIMIT = 2000
_READ_CHUNK = 512
USER_AGENT = "Tenantry-Webhooks/1.0"


@dataclass(frozen=True)
class HttpResult:
    status_code: int
    body: str  # the first RESPONSE_BODY_LIMIT bytes, decoded leniently


class _Deadline:
    """A monotonic deadline for one attempt; ``expire`` shuts its sockets down.

    It keeps a duplicate of each socket's descriptor: ``shutdown`` acts on the socket
    itself, so it also reaches a socket that TLS has since wrapped (and detached).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self.at

    def register(self, sock: socket.socket) -> None:
        dup = sock.dup()
        with self._lock:
            self._sockets.append(dup)
            expired = self.expired
        if expired:
            _shutdown(dup)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def close(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _pinned_socket(conn: Any, address: str, deadline: _Deadline | None) -> socket.socket:
    try:
        sock = create_connection(
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
    if deadline is not None:
        deadline.register(sock)
    return sock


class _PinnedHTTPConnection(HTTPConnection):
    pinned_address = ""
    deadline: _Deadline | None = None

    def _new_conn(self) -> socket.socket:
        return _pinned_socket(self, self.pinned_address, self.deadline)


class _PinnedHTTPSConnection(HTTPSConnection):
    pinned_address = ""
    deadline: _Deadline | None = None

    def _new_conn(self) -> socket.socket:
        return _pinned_socket(self, self.pinned_address, self.deadline)


class _PinnedAdapter(HTTPAdapter):
    """Every connection of this adapter goes to one address, whatever the URL's host."""

    def __init__(self, address: str, deadline: _Deadline | None = None) -> None:
        self._address = address
        self._deadline = deadline
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        attrs = {"pinned_address": self._address, "deadline": self._deadline}
        http_conn = type("PinnedHTTPConnection", (_PinnedHTTPConnection,), attrs)
        https_conn = type("PinnedHTTPSConnection", (_PinnedHTTPSConnection,), attrs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }


def webhook_post(
    *,
    url: str,
    address: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    deadline: float,
) -> HttpResult:
    """POST ``body`` to ``url`` through ``address``; raises ``requests.RequestException``.

    ``timeout`` is per socket operation, ``deadline`` (seconds) for the whole attempt: past
    it the attempt is aborted with ``requests.Timeout``, whatever the receiver sent so far.
    """
    limit = _Deadline(deadline)
    timer = threading.Timer(deadline, limit.expire)
    timer.daemon = True
    timer.start()
    try:
        with requests.Session() as session:
            session.trust_env = False  # no proxies or .netrc from the environment
            adapter = _PinnedAdapter(address, limit)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            try:
                response = session.post(
                    url,
                    data=body,
                    headers={"user-agent": USER_AGENT, **headers},
                    timeout=min(timeout, deadline),
                    allow_redirects=False,
                    stream=True,
                )
            except requests.RequestException as exc:
                if limit.passed():
                    raise _over(limit) from exc
                raise
            try:
                raw = _body_read(response, limit)
            finally:
                response.close()
    finally:
        timer.cancel()
        limit.close()
    return HttpResult(status_code=response.status_code, body=raw.decode("utf-8", "replace"))


def _over(limit: _Deadline) -> requests.Timeout:
    return requests.Timeout(f"No complete answer within {limit.seconds:g} s.")


def _body_read(response: requests.Response, limit: _Deadline) -> bytes:
    """At most ``RESPONSE_BODY_LIMIT`` bytes, in chunks, before the deadline."""
    chunks: list[bytes] = []
    size = 0
    while size < RESPONSE_BODY_LIMIT:
        if limit.passed():
            raise _over(limit)
        try:
            chunk = response.raw.read(
                min(_READ_CHUNK, RESPONSE_BODY_LIMIT - size), decode_content=True
            )
        except Exception as exc:  # a broken body does not change the status code we got
            if limit.passed():
                raise _over(limit) from exc
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if limit.expired:  # the last read may have ended only because the timer shut it down
        raise _over(limit)
    return b"".join(chunks)[:RESPONSE_BODY_LIMIT]
